"""The manifest of a model bundle: what the bundle is, and the SHA-256 of every file in it.

``manifest.json`` is JSON with sorted keys::

    {"created": "2026-01-01T00:00:00.000000Z", "files": {"model.joblib": {"kind": "joblib",
     "sha256": "…", "size": 1234}}, "format": "iotml-bundle/1", "input_schema": …,
     "iotml_version": "0.1.0", "key_id": "…", "meta": {}, "metrics": {"f1": 0.91},
     "name": "pump-risk", "task": "failure_risk", "version": "3"}

``kind`` says how a file loads: ``joblib`` (a pickled Python object, e.g. a scikit-learn
estimator) or ``bytes`` (given back as is, e.g. an ONNX graph). ``input_schema`` and
``meta`` are any JSON the trainer chooses (the features a model expects, a RUL cap…);
``metrics`` maps names to finite numbers. The signature in ``manifest.sig`` covers these
exact bytes, so the manifest is only parsed after it verified.
"""

from __future__ import annotations

__all__ = [
    "FORMAT",
    "KINDS",
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "FileEntry",
    "Manifest",
    "check_file_name",
    "check_metrics",
]

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from iotml.errors import BundleError, ConfigError
from iotml.registry.versions import check_name, check_version

FORMAT = "iotml-bundle/1"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
KINDS = ("bytes", "joblib")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a bundle: how it loads, its SHA-256 (hex) and its size in bytes."""

    kind: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A bundle's manifest; see the module docstring for the file layout."""

    name: str
    version: str
    task: str
    files: Mapping[str, FileEntry]
    created: str
    iotml_version: str
    key_id: str
    input_schema: Any = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The manifest's bytes, as signed and written."""
        doc = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "files": {
                n: {"kind": e.kind, "sha256": e.sha256, "size": e.size}
                for n, e in self.files.items()
            },
            "created": self.created,
            "iotml_version": self.iotml_version,
            "key_id": self.key_id,
            "input_schema": self.input_schema,
            "metrics": dict(self.metrics),
            "meta": dict(self.meta),
        }
        try:
            return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        except TypeError as err:
            raise ConfigError(f"input_schema or meta is not JSON-serialisable: {err}") from err

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse and check a manifest; ``where`` (its path) is named in every error."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise BundleError(f"{where} is not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise BundleError(f"{where} holds a {type(doc).__name__}, expected a JSON object")
        if doc.get("format") != FORMAT:
            raise BundleError(f"{where}: format={doc.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(
                name=check_name(doc.get("name"), "name"),
                version=check_version(doc.get("version")),
                task=check_name(doc.get("task"), "task"),
                files=_files(doc.get("files")),
                created=_text(doc, "created"),
                iotml_version=_text(doc, "iotml_version"),
                key_id=_text(doc, "key_id"),
                input_schema=doc.get("input_schema"),
                metrics=check_metrics(doc.get("metrics", {})),
                meta=_mapping(doc.get("meta", {}), "meta"),
            )
        except ConfigError as err:
            raise BundleError(f"{where}: {err}") from err


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string")
    return value


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{what}={value!r} must be a mapping with string keys")
    return dict(value)


def check_file_name(name: object) -> str:
    """A bundle file name: a safe single path component, not the manifest's own files."""
    if name in (MANIFEST_FILE, SIGNATURE_FILE):
        raise ConfigError(f"file name {name!r} is reserved for the bundle's manifest")
    return check_name(name, "file name")


def _files(value: object) -> dict[str, FileEntry]:
    files = _mapping(value, "files")
    if not files:
        raise ConfigError("files={} lists no model file")
    out = {}
    for name, entry in files.items():
        check_file_name(name)
        if not isinstance(entry, Mapping):
            raise ConfigError(f"files[{name!r}]={entry!r} must be an object")
        kind, digest, size = entry.get("kind"), entry.get("sha256"), entry.get("size")
        if kind not in KINDS:
            raise ConfigError(f"files[{name!r}].kind={kind!r} is not one of {KINDS}")
        if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
            raise ConfigError(f"files[{name!r}].sha256={digest!r} is not 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"files[{name!r}].size={size!r} is not a non-negative integer")
        out[name] = FileEntry(kind, digest, size)
    return out


def check_metrics(value: object) -> dict[str, float]:
    """Metrics as a dict of names to finite floats, or ConfigError naming the bad one.

    >>> check_metrics({"f1": 0.9, "n": 3})
    {'f1': 0.9, 'n': 3.0}
    """
    metrics = _mapping(value, "metrics")
    out = {}
    for key, number in metrics.items():
        ok = isinstance(number, numbers.Real) and not isinstance(number, bool)
        if not ok or not math.isfinite(float(number)):
            raise ConfigError(f"metrics[{key!r}]={number!r} must be a finite number")
        out[key] = float(number)
    return out
