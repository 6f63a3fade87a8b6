"""Signed model bundles: a directory that carries a model and proves who made it.

A bundle holds the model file(s), ``manifest.json`` (name, version, task, input schema,
metrics, the SHA-256 and size of every file, creation time, iotml version, signing key id;
see :mod:`iotml.registry.manifest`) and ``manifest.sig``, the base64 Ed25519 signature of
the manifest's exact bytes. Bundles are immutable: :func:`save_bundle` writes into a
temporary sibling directory and renames it into place, so a reader never sees half a
bundle and an existing bundle is never overwritten.

:func:`load_bundle` trusts nothing it has not checked, in this order: the signature
against the trusted keys (before the manifest is even parsed), then that the directory
holds exactly the listed files, then each file's size and SHA-256, and only then does it
unpickle the ``joblib`` files — from the very bytes it hashed, so a file swapped after the
check is never read. Unpickling runs code chosen by whoever wrote the pickle; the
signature is what makes loading safe, so never load bundles with a key you do not trust.

>>> import tempfile
>>> from pathlib import Path
>>> from sklearn.tree import DecisionTreeClassifier
>>> from iotml.registry.keys import SigningKey
>>> key = SigningKey.generate()
>>> model = DecisionTreeClassifier(random_state=0).fit([[0.0], [1.0]], [0, 1])
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = save_bundle(Path(tmp) / "b", name="pump-risk", version="1.0.0", task="failure_risk",
...                     objects={"model.joblib": model}, input_schema={"features": ["temp"]},
...                     metrics={"f1": 0.9}, key=key)
...     bundle = load_bundle(Path(tmp) / "b", trusted_keys=key.public_key)
...     bundle.ref, bundle.model.predict([[1.0]]).tolist()
('pump-risk@1.0.0', [1])
"""

from __future__ import annotations

__all__ = ["Bundle", "load_bundle", "save_bundle"]

import base64
import binascii
import hashlib
import io
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from iotml.errors import BundleError, ConfigError, UntrustedBundle
from iotml.registry.keys import PublicKey, SigningKey
from iotml.registry.manifest import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    FileEntry,
    Manifest,
    check_file_name,
    check_metrics,
)
from iotml.registry.versions import check_name, check_version

_MAX_MANIFEST = 4 << 20  # read before it is verified, so bounded


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified, loaded bundle: ``objects`` from its joblib files, ``data`` from the rest."""

    directory: Path
    manifest: Manifest
    objects: Mapping[str, Any]
    data: Mapping[str, bytes]

    @property
    def ref(self) -> str:
        """``name@version``, as events name the model that produced them."""
        return f"{self.manifest.name}@{self.manifest.version}"

    @property
    def model(self) -> Any:
        """The bundle's only joblib object; BundleError when it has none or several."""
        if len(self.objects) != 1:
            raise BundleError(
                f"bundle {self.ref} holds {len(self.objects)} joblib objects "
                f"{sorted(self.objects)}; pick one from .objects"
            )
        return next(iter(self.objects.values()))

    def parts(self, task: str, file: str, what: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """The input schema, meta and file ``file`` of a bundle of ``task``: the unpickled
        object of a joblib file, the bytes of any other.

        Raises :class:`BundleError` naming ``what`` (e.g. ``"a netsec model"``) when the
        task differs, the input schema is not an object or the file is missing.
        """
        schema = self.manifest.input_schema
        found = self.objects[file] if file in self.objects else self.data.get(file)
        if self.manifest.task != task or not isinstance(schema, dict) or found is None:
            raise BundleError(
                f"bundle {self.ref} is not {what} (task {self.manifest.task!r}); "
                f"expected task {task!r} with {file}"
            )
        return schema, dict(self.manifest.meta), found


def _payloads(
    objects: Mapping[str, Any] | None, files: Mapping[str, bytes | Path] | None
) -> dict[str, tuple[str, bytes]]:
    """Each file's kind and bytes; objects are pickled with joblib."""
    out: dict[str, tuple[str, bytes]] = {}
    for name, obj in (objects or {}).items():
        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        out[check_file_name(name)] = ("joblib", buffer.getvalue())
    for name, content in (files or {}).items():
        if check_file_name(name) in out:
            raise ConfigError(f"file name {name!r} is given both as an object and as a file")
        if isinstance(content, Path):
            content = content.read_bytes()
        if not isinstance(content, bytes):
            raise ConfigError(f"files[{name!r}] is a {type(content).__name__}, expected bytes")
        out[name] = ("bytes", content)
    if not out:
        raise ConfigError("a bundle needs at least one file: give objects= or files=")
    return out


def save_bundle(
    directory: str | os.PathLike[str],
    *,
    name: str,
    version: str | int,
    task: str,
    key: SigningKey,
    objects: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes | Path] | None = None,
    input_schema: Any = None,
    metrics: Mapping[str, float] | None = None,
    meta: Mapping[str, Any] | None = None,
    created: datetime | None = None,
) -> Manifest:
    """Write a signed bundle to ``directory`` (which must not exist, or be empty).

    Parameters
    ----------
    objects
        File name to Python object, pickled with joblib (e.g. ``{"model.joblib": est}``).
    files
        File name to bytes (or a :class:`~pathlib.Path` to copy), stored as given.
    input_schema, meta
        Any JSON: the inputs the model expects, and whatever else a loader needs.
    metrics
        Evaluation results, names to finite numbers.
    created
        The creation time (default: now, UTC); injected for reproducible bundles.
    """
    from iotml import __version__

    if not isinstance(key, SigningKey):
        raise ConfigError(f"key={key!r} must be an iotml.registry.SigningKey")
    payloads = _payloads(objects, files)
    when = created or datetime.now(UTC)
    if when.tzinfo is None:
        raise ConfigError(f"created={when!r} is a naive datetime; give an aware one")
    manifest = Manifest(
        name=check_name(name, "name"),
        version=check_version(version),
        task=check_name(task, "task"),
        files={
            n: FileEntry(kind, hashlib.sha256(b).hexdigest(), len(b))
            for n, (kind, b) in payloads.items()
        },
        created=when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        iotml_version=__version__,
        key_id=key.public_key.key_id,
        input_schema=input_schema,
        metrics=check_metrics(metrics or {}),
        meta=dict(meta or {}),
    )
    body = manifest.to_json()
    signature = base64.b64encode(key.sign(body)) + b"\n"
    contents = {n: b for n, (_, b) in payloads.items()}
    _write_atomically(Path(directory), {**contents, MANIFEST_FILE: body, SIGNATURE_FILE: signature})
    return manifest


def _write_atomically(directory: Path, contents: Mapping[str, bytes]) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(
            f"bundle directory {str(directory)!r} already exists; bundles are immutable, "
            "save a new version instead"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{secrets.token_hex(8)}.tmp")
    tmp.mkdir()
    try:
        for file_name, data in contents.items():
            with open(tmp / file_name, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        try:
            tmp.replace(directory)  # atomic; onto an empty directory too, never a full one
        except OSError as err:
            raise ConfigError(
                f"cannot create bundle directory {str(directory)!r}: {err.strerror}"
            ) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _read(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read() if limit is None else file.read(limit + 1)
    except FileNotFoundError as err:
        if path.name == SIGNATURE_FILE:
            raise UntrustedBundle(
                f"{path} is missing: the bundle is unsigned and will not be loaded"
            ) from err
        raise BundleError(f"{path} is missing") from err
    except OSError as err:
        raise BundleError(f"cannot read {path}: {err.strerror}") from err
    if limit is not None and len(data) > limit:
        raise BundleError(f"{path} is larger than {limit} bytes; not a bundle manifest")
    return data


def _keys(trusted_keys: PublicKey | Iterable[PublicKey]) -> list[PublicKey]:
    keys = [trusted_keys] if isinstance(trusted_keys, PublicKey) else list(trusted_keys)
    if not keys or not all(isinstance(k, PublicKey) for k in keys):
        raise ConfigError(
            f"trusted_keys={trusted_keys!r} must be one or more iotml.registry.PublicKey; "
            "an empty list would trust nothing"
        )
    return keys


def _verify_signature(directory: Path, keys: list[PublicKey]) -> bytes:
    """The manifest's bytes, once its signature verified against one of ``keys``."""
    sig_path = directory / SIGNATURE_FILE
    signature_text = _read(sig_path, limit=1024)
    body = _read(directory / MANIFEST_FILE, limit=_MAX_MANIFEST)
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except binascii.Error as err:
        raise UntrustedBundle(f"{sig_path} is not a base64 signature") from err
    if not any(k.verify(body, signature) for k in keys):
        ids = ", ".join(k.key_id for k in keys)
        raise UntrustedBundle(
            f"{sig_path} does not verify {MANIFEST_FILE} against any trusted key ({ids}): "
            "the manifest was altered, or signed by a key that is not trusted"
        )
    return body


def _check_listing(directory: Path, manifest: Manifest) -> None:
    present = {p.name for p in directory.iterdir()} - {MANIFEST_FILE, SIGNATURE_FILE}
    extra = sorted(present - set(manifest.files))
    if extra:
        raise BundleError(
            f"{directory} holds file(s) {extra} that the signed manifest does not list; "
            "a bundle must contain exactly its listed files"
        )
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise BundleError(f"{directory} lacks file(s) {missing} listed in its manifest")


def _verified_bytes(path: Path, entry: FileEntry) -> bytes:
    data = _read(path)
    if len(data) != entry.size:
        raise BundleError(
            f"{path} has {len(data)} bytes, the manifest says {entry.size}: "
            "the file is truncated or altered"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise BundleError(
            f"{path} has sha256 {digest}, the manifest says {entry.sha256}: the file was altered"
        )
    return data


def _unpickle(path: Path, data: bytes) -> Any:
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as err:  # unpickling can raise anything the pickled classes raise
        raise BundleError(f"{path} passed verification but could not be loaded: {err}") from err


def load_bundle(
    directory: str | os.PathLike[str], *, trusted_keys: PublicKey | Iterable[PublicKey]
) -> Bundle:
    """Verify the bundle in ``directory`` (see the module docstring), then load it.

    Raises
    ------
    UntrustedBundle
        ``manifest.sig`` is missing, malformed, or verifies against none of ``trusted_keys``.
    BundleError
        The manifest is malformed, a file is missing, unlisted, truncated or altered, or a
        verified pickle cannot be loaded (e.g. a library it needs is missing).
    """
    path = Path(directory)
    keys = _keys(trusted_keys)
    if not path.is_dir():
        raise BundleError(f"bundle directory {str(path)!r} does not exist or is not a directory")
    body = _verify_signature(path, keys)
    manifest = Manifest.from_json(body, str(path / MANIFEST_FILE))
    _check_listing(path, manifest)
    verified = {n: _verified_bytes(path / n, e) for n, e in manifest.files.items()}
    objects = {
        n: _unpickle(path / n, verified[n]) for n, e in manifest.files.items() if e.kind == "joblib"
    }
    data = {n: verified[n] for n, e in manifest.files.items() if e.kind == "bytes"}
    return Bundle(path, manifest, objects, data)
