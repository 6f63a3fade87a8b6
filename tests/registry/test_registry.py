"""The local registry: versions, latest, immutability, the home key pair."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from iotml.errors import BundleError, ConfigError, UnknownModel, UntrustedBundle
from iotml.registry import (
    LATEST,
    ModelRegistry,
    PublicKey,
    SigningKey,
    check_version,
    key_pair,
    load_bundle,
    local_signing_key,
    sort_versions,
    trusted_public_keys,
)
from iotml.registry.versions import is_prerelease, version_key


def test_semantic_version_ordering() -> None:
    versions = [
        "1.0.0",
        "1.0.0-rc.1",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "2",
        "0.9.9",
        "10",
        "1.10.0",
    ]
    assert sort_versions(versions) == [
        "0.9.9",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.10.0",
        "2",
        "10",
    ]
    assert version_key("3") == version_key("3.0.0")
    assert is_prerelease("1.0.0-rc.1")
    assert not is_prerelease("1.0.0")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "01",
        "1.2",
        "1.2.3.4",
        "v1",
        "1.0.0+b",
        "-1",
        -1,
        True,
        1.5,
        "1.0.0-",
        "1.0.0-01",
        "latest",
        "../1",
    ],
)
def test_invalid_versions(bad: object) -> None:
    with pytest.raises(ConfigError, match="is not an integer or a semantic version"):
        check_version(bad)


def _save(registry: ModelRegistry, version: str | int, key: SigningKey | None = None) -> None:
    registry.save(
        "pump", version, task="failure_risk", files={"m.bin": str(version).encode()}, key=key
    )


def test_versions_latest_and_explicit(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.names() == []
    assert registry.versions("pump") == []
    for version in ("1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"):
        _save(registry, version)
    assert registry.names() == ["pump"]
    assert registry.versions("pump") == ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]
    assert registry.resolve("pump") == "1.10.0"  # releases win over pre-releases
    assert registry.load("pump").data == {"m.bin": b"1.10.0"}
    assert registry.load("pump", "2.0.0-rc.1").data == {"m.bin": b"2.0.0-rc.1"}
    assert registry.path("pump", "1.2.0") == tmp_path / "models" / "pump" / "1.2.0"
    _save(registry, 2)
    assert registry.resolve("pump", LATEST) == "2"
    assert registry.resolve("pump", "2.0.0") == "2"  # same precedence


def test_only_prereleases_resolve_to_the_highest(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _save(registry, "1.0.0-a")
    _save(registry, "1.0.0-b")
    assert registry.resolve("pump") == "1.0.0-b"


def test_unknown_model_and_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(UnknownModel, match="model 'pump' has no versions"):
        registry.load("pump")
    _save(registry, 1)
    with pytest.raises(UnknownModel, match=r"no version '3'; it has \['1'\]"):
        registry.path("pump", 3)
    with pytest.raises(KeyError):  # UnknownModel is a KeyError too
        registry.resolve("pump", "4.0.0")


def test_versions_are_immutable(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _save(registry, 2)
    with pytest.raises(ConfigError, match="already has version '2'"):
        _save(registry, "2.0.0")


def test_stray_directories_are_not_versions(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _save(registry, 1)
    (tmp_path / "models" / "pump" / ".1.abc.tmp").mkdir()
    (tmp_path / "models" / "pump" / "notes").mkdir()
    (tmp_path / "models" / ".hidden").mkdir()
    assert registry.versions("pump") == ["1"]
    assert registry.names() == ["pump"]


def test_a_signed_bundle_copied_over_another_version_is_refused(tmp_path: Path) -> None:
    """Replaying an old, validly signed version as the newest one must not work."""
    registry = ModelRegistry(tmp_path)
    _save(registry, 1)
    _save(registry, 2)
    newest = registry.path("pump", 2)
    shutil.rmtree(newest)
    shutil.copytree(registry.path("pump", 1), newest)
    with pytest.raises(BundleError, match=r"signed as pump@1, not pump@2"):
        registry.load("pump")


def test_local_key_is_created_once_outside_the_home_and_trusted_by_default(
    tmp_path: Path,
) -> None:
    keys_dir = Path(os.environ["IOTML_KEY_DIR"])  # a fresh directory per test (conftest)
    assert trusted_public_keys(tmp_path) == []
    key = local_signing_key(tmp_path)
    assert local_signing_key(tmp_path).public_key == key.public_key  # loaded, not regenerated
    assert key_pair(keys_dir).public_key == key.public_key
    if os.name == "posix":
        assert (keys_dir / "signing.pem").stat().st_mode & 0o777 == 0o600
        assert keys_dir.stat().st_mode & 0o077 == 0
    assert PublicKey.load(keys_dir / "signing.pub.pem") == key.public_key
    assert trusted_public_keys(tmp_path) == [key.public_key]
    registry = ModelRegistry(tmp_path)
    _save(registry, 1)  # signed with the local key
    assert registry.load("pump").manifest.key_id == key.public_key.key_id
    assert not (tmp_path / "keys").exists()  # nothing about keys in the data home


def test_registry_defaults_to_iotml_home() -> None:
    home = Path(os.environ["IOTML_HOME"])  # a fresh directory per test (conftest)
    registry = ModelRegistry()
    _save(registry, 1)
    assert (home / "models" / "pump" / "1" / "manifest.sig").exists()
    assert (Path(os.environ["IOTML_KEY_DIR"]) / "signing.pem").exists()


def test_other_sites_are_trusted_through_the_key_directory(tmp_path: Path) -> None:
    other = SigningKey.generate()
    registry = ModelRegistry(tmp_path)
    _save(registry, 1, key=other)
    with pytest.raises(ConfigError, match="no key to trust in the key directory"):
        registry.load("pump")
    local_signing_key(tmp_path)
    with pytest.raises(UntrustedBundle):
        registry.load("pump")
    trusted = Path(os.environ["IOTML_KEY_DIR"]) / "trusted"
    trusted.mkdir()
    (trusted / "site-b.pem").write_bytes(other.public_key.to_pem())
    assert registry.load("pump").manifest.key_id == other.public_key.key_id
    assert load_bundle(registry.path("pump"), trusted_keys=trusted_public_keys(tmp_path))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_readable_private_key_is_refused(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "k.pem"
    key.save(path)
    assert SigningKey.load(path).public_key == key.public_key
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="has mode 644; other users may read it"):
        SigningKey.load(path)
    assert SigningKey.load(path, check_permissions=False).public_key == key.public_key
    with pytest.raises(ConfigError, match="already exists; not overwriting"):
        key.save(path)


def test_bad_key_files(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"garbage")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        SigningKey.load(path)
    with pytest.raises(ConfigError, match="is not a PEM public key"):
        PublicKey.load(path)
    with pytest.raises(ConfigError, match="cannot read key file"):
        PublicKey.load(tmp_path / "missing.pem")
    assert "BEGIN" not in repr(SigningKey.generate())  # no key material in reprs
