"""Identity bound to the login: a message may carry readings only of the device it came from.

A source that authenticated its peer (MQTT, where the broker binds a login to its own
topics; HTTP, where the token names the device) sets ``Message.device_bound``: the
message's ``device_id`` is then who sent it, and a payload naming any other device —
a flat-JSON ``device_id`` field, a SenML ``bn`` — is refused **whole**, as HTTP answers
403: none of its readings is stored, and it is dead-lettered once with a reason naming
both devices. A message not bound (a file import, a replay) keeps the devices its
payload names. The check is columnar: one comparison of the batch's device column
against each row's message device.

>>> from iotml.codecs import decode_many
>>> from iotml.transport.source import Message
>>> messages = [Message(b'{"ts": 1.7e9, "temp": 1}', "mqtt:a", "a", device_bound=True),
...             Message(b'{"ts": 1.7e9, "device_id": "b", "temp": 2}', "mqtt:a", "a",
...                     device_bound=True)]
>>> d = bind_devices(messages, decode_many([m.payload for m in messages],
...                                        device_ids=["a", "a"], now=1_800_000_000_000_000))
>>> d.batch.device_id.to_pylist(), [(r.payload_index, r.reason) for r in d.rejected]
(['a'], [(1, "device 'a' may not write for other devices ['b']")])
"""

from __future__ import annotations

__all__ = ["bind_devices"]

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs import Decoded, Rejected
from iotml.transport.source import Message


def bind_devices(messages: Sequence[Message], decoded: Decoded) -> Decoded:
    """``decoded`` without the messages whose payload names a device other than their own.

    ``decoded.payload_index`` maps each reading to its message; each refused message
    becomes one whole-payload :class:`~iotml.codecs.Rejected` (its per-record
    rejections are dropped with it: the payload is kept whole).
    """
    owners = [m.device_id if m.device_bound else None for m in messages]
    if not len(decoded.batch) or not any(owners):
        return decoded
    payloads = decoded.payloads()
    expected = pa.array(owners, pa.string()).take(pa.array(payloads))
    foreign = pc.fill_null(pc.not_equal(decoded.batch.device_id, expected), False)
    if not pc.any(foreign).as_py():
        return decoded
    rows = np.flatnonzero(foreign.to_numpy(zero_copy_only=False))
    named: dict[int, set[str]] = {}  # per refused message; a loop over bad rows only
    for k, name in zip(
        payloads[rows].tolist(), decoded.batch.device_id.take(rows).to_pylist(), strict=True
    ):
        named.setdefault(k, set()).add(name)
    keep = ~np.isin(payloads, list(named))
    rejected = [r for r in decoded.rejected if r.payload_index not in named]
    for k, others in named.items():
        why = f"device {owners[k]!r} may not write for other devices {sorted(others)}"
        rejected.append(Rejected(why, bytes(messages[k].payload), None, k))
    rejected.sort(key=lambda r: (r.payload_index or 0, -1 if r.index is None else r.index))
    return Decoded(
        decoded.batch.filter(keep), rejected, decoded.units, decoded.notes,
        payload_index=payloads[keep], time_kind=decoded.time_kinds()[keep],
    )  # fmt: skip
