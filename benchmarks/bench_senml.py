"""Decode speed of SenML JSON and CBOR packs, against plain parsing of the same bytes.

Each pack is what a gateway sends every few seconds: 10 devices x 10 metrics = 100
records, the first record of each device carrying ``bn`` (an RFC 9039 device URN), ``bt``
(absolute seconds), and every record ``n``, ``u``, ``v`` and a relative ``t``. The figure
of merit is readings/s of the decoders next to ``orjson.loads`` and ``json.loads`` of the
very same bytes, which only parse (no validation, no columns): one pack per call
(:func:`decode_senml_json`) and, as the stream pipeline decodes micro-batches of MQTT
messages, 10 and 100 packs per call (:func:`decode_senml_json_many`). The cases take turns
within each run and ratios are medians of per-run ratios, so they hold on a busy machine.

Run on one core::

    taskset -c 0 .venv/bin/python benchmarks/bench_senml.py [--packs 300] [--repeats 7]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import cbor2
import numpy as np
import orjson

from iotml.codecs._senml_records import CBOR_LABELS
from iotml.codecs.senml import (
    _decode_records,
    decode_senml_cbor,
    decode_senml_cbor_many,
    decode_senml_json,
    decode_senml_json_many,
)
from iotml.config import Limits
from iotml.types import Batch

METRICS = [
    ("temperature", "Cel"),
    ("humidity", "%RH"),
    ("pressure", "Pa"),
    ("battery", "%EL"),
    ("rssi", "dBW"),
    ("co2", "ppm"),
    ("illuminance", "lx"),
    ("voltage", "V"),
    ("current", "A"),
    ("power", "W"),
]
NOW_S = 1_767_225_600  # 2026-01-01T00:00:00Z, the injected receiver clock
LIMITS = Limits(max_future_s=10 * 365 * 86400.0)


def make_pack(rng: np.random.Generator, pack_no: int, devices: int = 10) -> list[dict[str, Any]]:
    """One realistic 100-record pack (devices x len(METRICS) records)."""
    records: list[dict[str, Any]] = []
    base_time = NOW_S - 3600 + pack_no * 10.0
    for d in range(devices):
        for m, (name, unit) in enumerate(METRICS):
            rec: dict[str, Any] = {}
            if m == 0:
                rec["bn"] = f"urn:dev:mac:0024befffe{(pack_no * devices + d) % 65536:06x}:"
                rec["bt"] = round(base_time + rng.uniform(0, 5), 3)
            rec["n"] = name
            rec["u"] = unit
            rec["v"] = round(float(rng.normal(20 + 3 * m, 2)), 2)
            rec["t"] = round(float(rng.uniform(-2, 0)), 3)
            records.append(rec)
    return records


def to_cbor(records: list[dict[str, Any]]) -> bytes:
    label = {name: key for key, name in CBOR_LABELS.items()}
    return cbor2.dumps([{label[k]: v for k, v in rec.items()} for rec in records])


Case = tuple[str, Callable[[], object]]


def readings_per_s(cases: list[Case], readings: int, repeats: int) -> dict[str, list[float]]:
    """Readings/s of each case in each run; the cases take turns within a run, so a noisy
    neighbour on the machine slows them all alike and the ratios stay meaningful."""
    rates: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeats):
        for name, decode_all in cases:
            start = time.perf_counter()
            decode_all()
            rates[name].append(readings / (time.perf_counter() - start))
    return rates


def one_by_one(decode: Callable[[bytes], object], payloads: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        for payload in payloads:
            decode(payload)

    return run


def in_calls_of(
    size: int, decode: Callable[[list[bytes]], object], payloads: list[bytes]
) -> Callable[[], None]:
    calls = [payloads[i : i + size] for i in range(0, len(payloads), size)]

    def run() -> None:
        for call in calls:
            decode(call)

    return run


def general_path(data: bytes) -> Any:
    return _decode_records(orjson.loads(data), None, LIMITS, NOW_S * 1_000_000, fast=False)


def build_cases(json_payloads: list[bytes], cbor_payloads: list[bytes]) -> list[Case]:
    now = NOW_S * 1_000_000

    def json_one(b: bytes) -> object:
        return decode_senml_json(b, limits=LIMITS, now=now)

    def json_many(calls: list[bytes]) -> object:
        return decode_senml_json_many(calls, limits=LIMITS, now=now)

    def cbor_one(b: bytes) -> object:
        return decode_senml_cbor(b, limits=LIMITS, now=now)

    def cbor_many(calls: list[bytes]) -> object:
        return decode_senml_cbor_many(calls, limits=LIMITS, now=now)

    return [
        ("json.loads (parse only)", one_by_one(json.loads, json_payloads)),
        ("orjson.loads (parse only)", one_by_one(orjson.loads, json_payloads)),
        ("decode_senml_json, one pack per call", one_by_one(json_one, json_payloads)),
        ("decode_senml_json_many, 10 packs per call", in_calls_of(10, json_many, json_payloads)),
        ("decode_senml_json_many, 100 packs per call", in_calls_of(100, json_many, json_payloads)),
        ("decode_senml_json, general path forced", one_by_one(general_path, json_payloads)),
        ("cbor2.loads (parse only)", one_by_one(cbor2.loads, cbor_payloads)),
        ("decode_senml_cbor, one pack per call", one_by_one(cbor_one, cbor_payloads)),
        ("decode_senml_cbor_many, 100 packs per call", in_calls_of(100, cbor_many, cbor_payloads)),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=300, help="distinct packs decoded per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs; the median is reported")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    packs = [make_pack(rng, i) for i in range(args.packs)]
    json_payloads = [orjson.dumps(p) for p in packs]
    cbor_payloads = [to_cbor(p) for p in packs]
    check(json_payloads, cbor_payloads, sum(len(p) for p in packs))
    readings = sum(len(p) for p in packs)
    load_before = os.getloadavg()
    runs = readings_per_s(build_cases(json_payloads, cbor_payloads), readings, args.repeats)
    load_after = os.getloadavg()
    results = {name: statistics.median(rates) for name, rates in runs.items()}
    ratios = {
        base: {
            name: statistics.median(r / b for r, b in zip(rates, runs[base], strict=True))
            for name, rates in runs.items()
        }
        for base in ("json.loads (parse only)", "orjson.loads (parse only)")
    }
    summary = {
        "packs": args.packs,
        "records_per_pack": len(packs[0]),
        "mean_json_bytes": statistics.mean(map(len, json_payloads)),
        "mean_cbor_bytes": statistics.mean(map(len, cbor_payloads)),
        "repeats": args.repeats,
        "load_average_1_5_15_min": {"before": load_before, "after": load_after},
        "readings_per_s": results,
        "ratio_vs_json_loads": ratios["json.loads (parse only)"],
        "ratio_vs_orjson_loads": ratios["orjson.loads (parse only)"],
    }
    print(
        f"{args.packs} packs x {len(packs[0])} records "
        f"(JSON {summary['mean_json_bytes']:.0f} B, CBOR {summary['mean_cbor_bytes']:.0f} B "
        f"per pack), median of {args.repeats} runs; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after\n"
    )
    print("| decoder | readings/s (median) | vs json.loads | vs orjson.loads |")
    print("|---|---:|---:|---:|")
    for name, rate in results.items():
        vs_json = ratios["json.loads (parse only)"][name]
        vs_orjson = ratios["orjson.loads (parse only)"][name]
        print(f"| {name} | {rate / 1e6:.2f} M | {vs_json:.2f} | {vs_orjson:.2f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
    return summary


def check(json_payloads: list[bytes], cbor_payloads: list[bytes], readings: int) -> None:
    """Every decoder sees clean packs and they all agree (this also warms them up)."""
    now = NOW_S * 1_000_000
    many = decode_senml_json_many(json_payloads, limits=LIMITS, now=now)
    if len(many.batch) != readings or many.rejected:
        raise SystemExit(f"the benchmark packs do not decode cleanly: {many.rejected[:3]}")
    one = Batch.concat(decode_senml_json(p, limits=LIMITS, now=now).batch for p in json_payloads)
    cbor = decode_senml_cbor_many(cbor_payloads, limits=LIMITS, now=now).batch
    if one != many.batch or cbor != many.batch:
        raise SystemExit("the per-pack, many-pack and CBOR decoders disagree")


if __name__ == "__main__":
    main(sys.argv[1:])
