"""Trust roots come from configuration outside the data home, never from the data home."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from iotml.errors import ConfigError, UntrustedBundle
from iotml.registry import KeyConfig, ModelRegistry, SigningKey, local_signing_key
from iotml.registry.trust import default_key_dir

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _key_dir() -> Path:
    return Path(os.environ["IOTML_KEY_DIR"])  # a fresh directory per test (conftest)


def _save(registry: ModelRegistry, version: str, key: SigningKey | None = None) -> None:
    registry.save("pump", version, task="failure_risk", files={"m.bin": b"model"}, key=key)


def _attacker_bundle(home: Path, plant: str) -> ModelRegistry:
    """A bundle signed by an attacker who can write the data home and planted their key."""
    attacker = SigningKey.generate()
    registry = ModelRegistry(home)
    _save(registry, "2", key=attacker)
    keys = home / "keys"
    (keys / "trusted").mkdir(parents=True, exist_ok=True)
    target = keys / "signing.pub.pem" if plant == "signing.pub.pem" else keys / "trusted" / plant
    target.write_bytes(attacker.public_key.to_pem())
    return registry


@pytest.mark.parametrize("plant", ["signing.pub.pem", "extra.pem"])
def test_a_bundle_signed_by_a_key_planted_in_the_data_home_is_refused(
    tmp_path: Path, plant: str
) -> None:
    registry = ModelRegistry(tmp_path)
    _save(registry, "1")  # the real model, signed with the local key (outside the home)
    attacker = _attacker_bundle(tmp_path, plant)
    with pytest.raises(UntrustedBundle, match=r"Keys in .*keys are not trusted"):
        attacker.load("pump", "2")
    assert attacker.load("pump", "1").manifest.version == "1"


def test_a_trust_path_inside_the_data_home_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = tmp_path / "keys"
    inside.mkdir()
    monkeypatch.setenv("IOTML_TRUSTED_KEYS", str(inside))
    with pytest.raises(ConfigError, match=r"IOTML_TRUSTED_KEYS\) .* is inside the data home"):
        ModelRegistry(tmp_path).keys.trusted_keys(tmp_path)
    monkeypatch.delenv("IOTML_TRUSTED_KEYS")
    monkeypatch.setenv("IOTML_KEY_DIR", str(tmp_path / "my-keys"))
    with pytest.raises(ConfigError, match=r"IOTML_KEY_DIR\) .* is inside the data home"):
        _save(ModelRegistry(tmp_path), "1")  # signing refuses too: its key would be trusted
    assert not (tmp_path / "my-keys").exists()


@posix_only
def test_a_link_into_the_data_home_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = _key_dir().parent / "link"
    outside.symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.setenv("IOTML_TRUSTED_KEYS", str(outside))
    with pytest.raises(ConfigError, match="is inside the data home"):
        ModelRegistry(tmp_path).keys.trusted_keys(tmp_path)


def test_configured_trusted_keys_replace_the_default_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = SigningKey.generate()
    etc = _key_dir().parent / "etc-iotml"
    etc.mkdir()
    (etc / "site.pem").write_bytes(site.public_key.to_pem())
    registry = ModelRegistry(tmp_path)
    _save(registry, "1")  # the local key
    _save(registry, "2", key=site)
    monkeypatch.setenv("IOTML_TRUSTED_KEYS", os.pathsep.join([str(etc / "site.pem"), str(etc)]))
    configured = ModelRegistry(tmp_path)
    assert configured.keys.trusted_keys(tmp_path) == [site.public_key]
    assert configured.load("pump", "2").manifest.key_id == site.public_key.key_id
    with pytest.raises(UntrustedBundle):
        configured.load("pump", "1")  # the local key is not in the configured set
    monkeypatch.setenv("IOTML_TRUSTED_KEYS", str(etc / "missing.pem"))
    with pytest.raises(ConfigError, match=r"missing\.pem', which does not exist"):
        ModelRegistry(tmp_path).load("pump", "2")


def test_a_pinned_fingerprint_is_trusted_wherever_its_key_file_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = SigningKey.generate()
    registry = ModelRegistry(tmp_path)
    _save(registry, "1", key=site)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "signing.pub.pem").write_bytes(site.public_key.to_pem())
    monkeypatch.setenv("IOTML_TRUSTED_FINGERPRINTS", site.public_key.fingerprint.upper())
    assert ModelRegistry(tmp_path).load("pump", "1").manifest.key_id == site.public_key.key_id
    attacker = _attacker_bundle(tmp_path, "extra.pem")  # a planted key is not pinned
    with pytest.raises(UntrustedBundle):
        attacker.load("pump", "2")


def test_pins_that_match_nothing_or_are_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _save(ModelRegistry(tmp_path), "1")
    unknown = SigningKey.generate().public_key.fingerprint
    monkeypatch.setenv("IOTML_TRUSTED_FINGERPRINTS", unknown)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError, match="no key to trust"):
        ModelRegistry(tmp_path).load("pump")
    assert f"pinned key {unknown} (IOTML_TRUSTED_FINGERPRINTS) matches no public key" in caplog.text
    monkeypatch.setenv("IOTML_TRUSTED_FINGERPRINTS", "sha256:abc")
    with pytest.raises(ConfigError, match="'sha256:abc', which is not a key fingerprint"):
        ModelRegistry(tmp_path)


@posix_only
@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_trusted_set_others_may_write_is_warned_about(
    tmp_path: Path, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = local_signing_key(tmp_path)
    trusted = _key_dir() / "trusted"
    trusted.mkdir()
    (trusted / "site.pem").write_bytes(SigningKey.generate().public_key.to_pem())
    (trusted / "site.pem").chmod(0o644)
    trusted.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        assert ModelRegistry(tmp_path).keys.trusted_keys(tmp_path)[0] == key.public_key
    assert "writable by group or others" not in caplog.text
    target = trusted / "site.pem" if what == "file" else trusted
    target.chmod(0o666 if what == "file" else 0o777)
    with caplog.at_level(logging.WARNING):
        ModelRegistry(tmp_path).keys.trusted_keys(tmp_path)
    assert f"trusted key {what} {target} is writable by group or others" in caplog.text
    assert f"chmod go-w {target}" in caplog.text


@posix_only
def test_an_empty_trust_directory_others_may_write_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    drop = _key_dir().parent / "drop"
    drop.mkdir()
    drop.chmod(0o777)  # anyone could add a key here next
    monkeypatch.setenv("IOTML_TRUSTED_KEYS", str(drop))
    with caplog.at_level(logging.WARNING):
        assert ModelRegistry(tmp_path).keys.trusted_keys(tmp_path) == []
    assert f"trusted key directory {drop} is writable by group or others (mode 777)" in caplog.text


def test_the_default_key_directory_follows_xdg() -> None:
    assert default_key_dir({"XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}) == Path("/cfg/iotml/keys")
    assert default_key_dir({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/iotml/keys"
    )
    assert KeyConfig.from_env({"HOME": "/h"}).key_dir == Path("/h/.config/iotml/keys")
    assert KeyConfig.from_env({"IOTML_KEY_DIR": "/k"}).key_dir == Path("/k")


def test_iotml_keys_shows_the_fingerprints_to_pin(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from iotml.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["keys"])
    assert result.exit_code == 0, result.output
    assert "not created yet" in result.output
    assert "no key is trusted" in result.output
    key = local_signing_key()
    result = runner.invoke(app, ["keys", "-o", "json"])
    assert result.exit_code == 0, result.output
    (row,) = [orjson.loads(line) for line in result.output.splitlines()]
    assert row == {
        "fingerprint": key.public_key.fingerprint,
        "key_id": key.public_key.key_id,
        "file": str(_key_dir() / "signing.pub.pem"),
    }
