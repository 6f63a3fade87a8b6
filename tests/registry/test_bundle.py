"""Bundles round-trip, and every kind of tampering is a clear error before anything loads."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from iotml.errors import BundleError, ConfigError, UntrustedBundle
from iotml.registry import SigningKey, load_bundle, save_bundle

KEY = SigningKey.generate()


def _model() -> DecisionTreeClassifier:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    return DecisionTreeClassifier(random_state=0).fit(x, [0, 1, 0, 1])


def _save(directory: Path, key: SigningKey = KEY) -> Path:
    save_bundle(
        directory,
        name="pump-risk",
        version="1.2.0",
        task="failure_risk",
        key=key,
        objects={"model.joblib": _model()},
        files={"notes.txt": b"trained on site A"},
        input_schema={"features": ["temp", "vibration"]},
        metrics={"f1": 0.91, "pr_auc": np.float64(0.88)},
        meta={"horizon_h": 24},
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    return directory


def test_round_trip(tmp_path: Path) -> None:
    bundle = load_bundle(
        _save(tmp_path / "b"), trusted_keys=[SigningKey.generate().public_key, KEY.public_key]
    )
    m = bundle.manifest
    assert (m.name, m.version, m.task, bundle.ref) == (
        "pump-risk",
        "1.2.0",
        "failure_risk",
        "pump-risk@1.2.0",
    )
    assert m.created == "2026-01-02T03:04:05.000000Z"
    assert m.metrics == {"f1": 0.91, "pr_auc": 0.88}
    assert m.input_schema == {"features": ["temp", "vibration"]}
    assert m.meta == {"horizon_h": 24}
    assert m.key_id == KEY.public_key.key_id
    assert set(m.files) == {"model.joblib", "notes.txt"}
    assert bundle.data == {"notes.txt": b"trained on site A"}
    x = np.array([[0.1, 0.95], [0.95, 0.05]])
    np.testing.assert_array_equal(bundle.model.predict(x), _model().predict(x))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "manifest.json",
        "manifest.sig",
        "model.joblib",
        "notes.txt",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_manifest_records_sha256_of_every_file(tmp_path: Path) -> None:
    import hashlib

    directory = _save(tmp_path / "b")
    files = json.loads((directory / "manifest.json").read_bytes())["files"]
    for name, entry in files.items():
        data = (directory / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)


def test_tampered_model_file(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    data = bytearray((directory / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.joblib has sha256 .* the file was altered"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_truncated_file(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    data = (directory / "model.joblib").read_bytes()
    (directory / "model.joblib").write_bytes(data[:-10])
    with pytest.raises(BundleError, match=r"model\.joblib has \d+ bytes, the manifest says"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_tampered_manifest(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    path = directory / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b"0.91", b"0.99"))
    with pytest.raises(UntrustedBundle, match=r"manifest\.sig does not verify manifest\.json"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_wrong_key(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b", key=SigningKey.generate())
    with pytest.raises(UntrustedBundle, match=KEY.public_key.key_id):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_missing_signature(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    (directory / "manifest.sig").unlink()
    with pytest.raises(UntrustedBundle, match=r"manifest\.sig is missing: the bundle is unsigned"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_garbled_signature(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    (directory / "manifest.sig").write_bytes(b"not base64 !!")
    with pytest.raises(UntrustedBundle, match="not a base64 signature"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_missing_manifest(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    (directory / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_extra_file(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    (directory / "evil.joblib").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"\['evil\.joblib'\] that the signed manifest does not"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_missing_listed_file(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    (directory / "notes.txt").unlink()
    with pytest.raises(BundleError, match=r"lacks file\(s\) \['notes\.txt'\]"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_signed_but_malformed_manifest_is_a_bundle_error(tmp_path: Path) -> None:
    directory = tmp_path / "b"
    directory.mkdir()
    body = json.dumps({"format": "iotml-bundle/1", "name": "../x"}).encode()
    (directory / "manifest.json").write_bytes(body)
    (directory / "manifest.sig").write_bytes(base64.b64encode(KEY.sign(body)))
    with pytest.raises(BundleError, match=r"manifest\.json: name='\.\./x' is not a valid name"):
        load_bundle(directory, trusted_keys=KEY.public_key)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist or is not a directory"):
        load_bundle(tmp_path / "nope", trusted_keys=KEY.public_key)


def test_no_trusted_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="would trust nothing"):
        load_bundle(_save(tmp_path / "b"), trusted_keys=[])


def test_existing_bundle_is_never_overwritten(tmp_path: Path) -> None:
    directory = _save(tmp_path / "b")
    before = (directory / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="bundles are immutable"):
        _save(directory)
    assert (directory / "manifest.json").read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    load_bundle(_save(empty), trusted_keys=KEY.public_key)  # an empty directory is fine


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"name": "a/b"}, "name='a/b' is not a valid name"),
        ({"version": "1.2"}, "version='1.2' is not an integer or a semantic version"),
        ({"version": "1.0.0+build5"}, "no build metadata"),
        ({"task": ""}, "task='' is not a valid name"),
        ({"objects": {"manifest.json": 1}}, "reserved for the bundle's manifest"),
        ({"objects": {"../m.joblib": 1}}, "file name='../m.joblib' is not a valid name"),
        ({"objects": None, "files": None}, "at least one file"),
        ({"files": {"m": "text"}}, r"files\['m'\] is a str, expected bytes"),
        ({"metrics": {"rmse": float("nan")}}, r"metrics\['rmse'\]=nan must be a finite"),
        ({"meta": {"x": object()}}, "not JSON-serialisable"),
        ({"created": datetime(2026, 1, 1)}, "naive datetime"),
    ],
)
def test_invalid_arguments(tmp_path: Path, changes: dict[str, object], match: str) -> None:
    kwargs: dict[str, object] = {
        "name": "m",
        "version": 1,
        "task": "rul",
        "key": KEY,
        "objects": {"m.joblib": 1},
    }
    kwargs.update(changes)
    with pytest.raises(ConfigError, match=match):
        save_bundle(tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "b").exists()


def test_model_property_needs_exactly_one_object(tmp_path: Path) -> None:
    save_bundle(
        tmp_path / "b",
        name="m",
        version=1,
        task="rul",
        key=KEY,
        objects={"a.joblib": 1, "b.joblib": 2},
    )
    bundle = load_bundle(tmp_path / "b", trusted_keys=KEY.public_key)
    assert bundle.objects == {"a.joblib": 1, "b.joblib": 2}
    with pytest.raises(BundleError, match="holds 2 joblib objects"):
        _ = bundle.model
