"""Per-device state of :class:`~iotml.anomaly.pca.PCADetector`, held in stacked arrays.

Device ``d`` owns row ``d`` of every array; matrices are padded to the widest device, and
a device with ``c`` channels uses the leading ``c x c`` block. Learning, refitting and
saving act on many devices at once; refits group devices by channel count so each
group is one batched ``numpy.linalg.eigh``.

>>> import numpy as np
>>> m = DeviceModels()
>>> m.grow(1, 2)
>>> m.restart(np.array([0]), np.array([2]))
>>> for x in ([1.0, 2.0], [3.0, 2.0]):
...     m.learn(np.array([0]), np.array([x]), np.array([[True, True]]), alpha=0.01)
>>> m.mean[0].tolist(), m.cov[0].tolist(), float(m.n_eff[0])
([2.0, 2.0], [[1.0, 0.0], [0.0, 0.0]], 2.0)
"""

from __future__ import annotations

__all__ = ["DeviceModels"]

import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.anomaly import _pca_math as pm
from iotml.anomaly._align import ChannelIndex
from iotml.errors import ConfigError, InvalidData

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_VECTORS = ("channels", "k", "n", "since", "gated", "w2", "nu", "g", "h")
_INTS = frozenset({"channels", "k", "n", "since", "gated"})
_MATRICES = ("mean", "values", "cov", "vectors")


class DeviceModels:
    """Learned statistics (``mean``, ``cov``) and fitted PCA models, one row per device.

    ``channels`` is the channel count of the device's model (0: none yet); ``k`` its
    components (0: still warming up); ``n`` rows learned; ``since`` rows since the last
    refit; ``gated`` consecutive rows not learned from; ``w2`` the sum of squared
    weights (so ``1/w2`` is the effective number of rows); ``nu`` that number at the last
    refit; ``g``, ``h`` the Q distribution's parameters.
    """

    def __init__(self) -> None:
        self.channels = np.zeros(0, dtype=np.int64)
        self.k = np.zeros(0, dtype=np.int64)
        self.n = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        self.gated = np.zeros(0, dtype=np.int64)
        self.w2, self.nu, self.g, self.h = (np.zeros(0) for _ in range(4))
        self.mean, self.values = np.zeros((0, 0)), np.zeros((0, 0))
        self.cov, self.vectors = np.zeros((0, 0, 0)), np.zeros((0, 0, 0))

    @property
    def n_eff(self) -> F64:
        """Effective number of rows behind each device's mean and covariance."""
        out: F64 = 1.0 / np.maximum(self.w2, 1e-300)
        return out

    def grow(self, devices: int, width: int) -> None:
        """Make room for ``devices`` devices of up to ``width`` channels."""
        have, have_w = self.mean.shape
        if devices <= have and width <= have_w:
            return
        cap = max(devices, 2 * have, 16) if devices > have else have
        w = max(width, have_w)
        for name in _VECTORS:
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[:have] = old
            setattr(self, name, new)
        for name in _MATRICES:
            old = getattr(self, name)
            new = np.zeros((cap,) + (w,) * (old.ndim - 1))
            new[(slice(0, have),) + (slice(0, have_w),) * (old.ndim - 1)] = old
            setattr(self, name, new)

    def restart(self, d: I64, channels: I64) -> None:
        """Forget devices ``d`` and warm them up again with ``channels`` channels."""
        self.channels[d] = channels
        for name in ("k", "n", "since", "gated"):
            getattr(self, name)[d] = 0
        for name in ("w2", "nu", "g", "h"):
            getattr(self, name)[d] = 0.0
        self.mean[d], self.cov[d], self.values[d], self.vectors[d] = 0.0, 0.0, 0.0, 0.0

    def learn(self, d: I64, x: F64, need: B, alpha: float) -> None:
        """Exponentially weighted mean/covariance update with rows ``x`` of devices ``d``.

        The first rows are averaged plainly (weight ``1/(n+1)``), then the weights decay
        with ``alpha`` per row; channels outside ``need`` are left alone.
        """
        w = x.shape[1]
        a = np.maximum(alpha, 1.0 / (self.n[d] + 1.0))
        m = self.mean[d, :w]
        diff = np.where(need, x - m, 0.0)
        self.mean[d, :w] = m + a[:, None] * diff
        outer = diff[:, :, None] * diff[:, None, :]
        cov = self.cov[d, :w, :w]
        self.cov[d, :w, :w] = (1.0 - a)[:, None, None] * (cov + a[:, None, None] * outer)
        self.w2[d] = (1.0 - a) ** 2 * self.w2[d] + a * a
        self.n[d] += 1
        self.since[d] += 1

    def refit(self, d: I64, *, variance: float, min_std: float) -> None:
        """Eigendecompose the correlation matrices of devices ``d`` (grouped by width)."""
        for c in np.unique(self.channels[d]).tolist():
            dd = d[self.channels[d] == c]
            m = pm.fit(self.cov[dd, :c, :c], self.mean[dd, :c], variance=variance, min_std=min_std)
            self.vectors[dd, :c, :c], self.values[dd, :c] = m.vectors, m.values
            self.k[dd], self.g[dd], self.h[dd] = m.k, m.g, m.h
            self.nu[dd] = self.n_eff[dd]
            self.since[dd] = 0

    def model(self, d: I64, c: int) -> pm.Model:
        """The fitted models of devices ``d``, all with ``c`` channels."""
        return pm.Model(
            self.vectors[d, :c, :c], self.values[d, :c], self.k[d], self.g[d], self.h[d]
        )

    def nbytes_per_device(self, channels: int) -> int:
        """Bytes of state per device of ``channels`` channels (plus the carried values)."""
        c = channels
        return 8 * (len(_VECTORS) + 2 * c + 2 * c * c + 2 * c)

    # -- state --------------------------------------------------------------------------
    def to_bytes(self, name: str, params: dict[str, Any], channels: ChannelIndex) -> bytes:
        """The state as ``.npz`` bytes: arrays, and parameters and keys as JSON."""
        n = len(channels)
        keys, index_arrays = channels.to_state()
        meta = {"detector": name, "params": params, "channels": keys}
        arrays: dict[str, npt.NDArray[Any]] = {f"ix_{k}": v for k, v in index_arrays.items()}
        for field in _VECTORS + _MATRICES:
            arrays[f"m_{field}"] = getattr(self, field)[:n]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
        return buf.getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, name: str, params: dict[str, Any]
    ) -> tuple[ChannelIndex, DeviceModels]:
        """The channel index and models :meth:`to_bytes` saved, checked against ``params``."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except (OSError, ValueError, KeyError) as err:
            raise InvalidData(f"not a saved {name!r} detector state: {err}") from err
        if meta.get("detector") != name or meta.get("params") != params:
            raise ConfigError(
                f"saved state is for {meta.get('detector')!r} with {meta.get('params')!r}, "
                f"not {name!r} with {params!r}"
            )
        index = ChannelIndex.from_state(
            meta["channels"], {k[3:]: v for k, v in arrays.items() if k.startswith("ix_")}
        )
        self = cls()
        for field in _VECTORS + _MATRICES:
            value = arrays[f"m_{field}"]
            setattr(self, field, value.astype(np.int64 if field in _INTS else np.float64))
        return index, self
