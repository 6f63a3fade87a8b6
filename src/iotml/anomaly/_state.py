"""Saved state as bytes: named numpy arrays plus JSON metadata in one ``.npz``, no pickle.

>>> import numpy as np
>>> meta, arrays = unpack(pack({"v": 1}, {"x": np.arange(3)}), "demo")
>>> meta, arrays["x"].tolist()
({'v': 1}, [0, 1, 2])
"""

from __future__ import annotations

__all__ = ["pack", "unpack"]

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData

_META = "__meta__"


def pack(meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """``arrays`` and ``meta`` (JSON-serialisable) as ``.npz`` bytes."""
    buf = io.BytesIO()
    blobs = dict(arrays)
    blobs[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **blobs)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return buf.getvalue()


def unpack(data: bytes, what: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """What :func:`pack` wrote; anything else is :class:`InvalidData` naming ``what``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z[_META].tobytes())
            arrays = {k: z[k] for k in z.files if k != _META}
    except (OSError, ValueError, KeyError) as err:
        raise InvalidData(f"not a saved {what} state: {err}") from err
    return meta, arrays
