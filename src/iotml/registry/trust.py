"""Which keys a server trusts for model bundles, and where the local signing key lives.

Trust is configuration, never data. The data home (``$IOTML_HOME``) is written by the
server, by ``iotml import`` and by whoever else can reach its files, so nothing in it
decides which bundles may run: a key file planted there is never trusted, and a trust
path inside it is refused with a :class:`~iotml.errors.ConfigError`.

``IOTML_KEY_DIR``
    The local key pair: ``signing.pem``, created on first use by the commands that train
    (``train``, ``fit``), ``signing.pub.pem`` beside it, and ``trusted/*.pem``, the public
    keys of other sites to accept. Default: ``$XDG_CONFIG_HOME/iotml/keys``, else
    ``~/.config/iotml/keys``. By default a server trusts exactly these keys: its own and
    ``trusted/*.pem``.
``IOTML_TRUSTED_KEYS``
    PEM public key files, or directories of ``*.pem``, separated by ``os.pathsep``
    (``:`` on POSIX). When set, these keys are trusted instead of the key directory's.
``IOTML_TRUSTED_FINGERPRINTS``
    Comma-separated key fingerprints (``sha256:`` and 64 hex digits, as ``iotml keys``
    prints them). When set, only keys with one of these fingerprints are trusted, wherever
    their PEM file lies — in the places above or in the data home's ``keys/`` — since no
    planted key can match a pinned fingerprint.

A trusted key file, or its directory, that group or others may write is reported as a
logging warning each time the trusted set is read: whoever can write there can make
iotml load their code. Pinned keys are exempt (their files cannot change what is trusted).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     home, config = Path(tmp) / "data", KeyConfig(key_dir=Path(tmp) / "keys")
...     key = config.signing_key(home)  # created on first use
...     trusted = config.trusted_keys(home)
...     pinned = KeyConfig(config.key_dir, fingerprints=(key.public_key.fingerprint,))
...     trusted == [key.public_key] == pinned.trusted_keys(home)
True
>>> KeyConfig(key_dir=Path("data/keys")).trusted_keys(home=Path("data"))
Traceback (most recent call last):
...
iotml.errors.ConfigError: the key directory (IOTML_KEY_DIR) 'data/keys' is inside the data home ...
"""

from __future__ import annotations

__all__ = [
    "FINGERPRINTS_ENV",
    "KEY_DIR_ENV",
    "TRUSTED_KEYS_ENV",
    "KeyConfig",
    "TrustedKey",
    "default_key_dir",
    "local_signing_key",
    "trusted_public_keys",
]

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from iotml.config import Settings
from iotml.errors import ConfigError
from iotml.registry.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, PublicKey, SigningKey, key_pair

log = logging.getLogger(__name__)

KEY_DIR_ENV = "IOTML_KEY_DIR"
TRUSTED_KEYS_ENV = "IOTML_TRUSTED_KEYS"
FINGERPRINTS_ENV = "IOTML_TRUSTED_FINGERPRINTS"
_FINGERPRINT = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


def default_key_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/iotml/keys``, else ``~/.config/iotml/keys``."""
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config):  # the XDG spec says to ignore a relative one
        config = str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "iotml" / "keys"


def _fingerprints(raw: str) -> tuple[str, ...]:
    found = []
    for item in (part.strip().lower() for part in raw.split(",")):
        match = _FINGERPRINT.fullmatch(item)
        if item and match is None:
            raise ConfigError(
                f"{FINGERPRINTS_ENV} holds {item!r}, which is not a key fingerprint; "
                "expected 'sha256:' and 64 hex digits, as `iotml keys` prints them"
            )
        if match is not None:
            found.append("sha256:" + match.group(1))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A trusted public key and the file it was read from."""

    key: PublicKey
    source: Path


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """Where the local key pair lives and which keys verify bundles (see the module doc).

    Parameters
    ----------
    key_dir
        The directory of the local key pair and its ``trusted/`` keys.
    trusted_paths
        PEM files or directories of ``*.pem``; when given, trusted instead of ``key_dir``'s.
    fingerprints
        ``sha256:…`` fingerprints; when given, only keys with one of them are trusted.
    """

    key_dir: Path
    trusted_paths: tuple[Path, ...] = ()
    fingerprints: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyConfig:
        """Read ``IOTML_KEY_DIR``, ``IOTML_TRUSTED_KEYS``, ``IOTML_TRUSTED_FINGERPRINTS``."""
        env = os.environ if env is None else env
        key_dir = env.get(KEY_DIR_ENV)
        paths = env.get(TRUSTED_KEYS_ENV, "").split(os.pathsep)
        return cls(
            key_dir=Path(key_dir).expanduser() if key_dir else default_key_dir(env),
            trusted_paths=tuple(Path(p).expanduser() for p in paths if p.strip()),
            fingerprints=_fingerprints(env.get(FINGERPRINTS_ENV, "")),
        )

    def signing_key(self, home: str | os.PathLike[str]) -> SigningKey:
        """The local signing key, created on first use; ``home`` is the data home in use."""
        _outside(self.key_dir, Path(home), f"the key directory ({KEY_DIR_ENV})")
        return key_pair(self.key_dir)

    def trusted(self, home: str | os.PathLike[str]) -> list[TrustedKey]:
        """The keys that verify bundles loaded from ``home``, each with its file.

        Nothing is created; an empty list means no bundle can be loaded yet.
        """
        home = Path(home)
        found = list(self._configured(home))
        if self.fingerprints:
            return self._pinned([*found, *_planted(home)])
        _warn_writable([*self._locations(), *(t.source for t in found)])
        unique: dict[PublicKey, TrustedKey] = {}
        for trusted in found:
            unique.setdefault(trusted.key, trusted)
        return list(unique.values())

    def trusted_keys(self, home: str | os.PathLike[str]) -> list[PublicKey]:
        """The public keys of :meth:`trusted`."""
        return [t.key for t in self.trusted(home)]

    def describe(self) -> str:
        """Where trusted keys come from, in words, for error messages."""
        where = (
            f"{TRUSTED_KEYS_ENV}={os.pathsep.join(map(str, self.trusted_paths))}"
            if self.trusted_paths
            else f"the key directory {str(self.key_dir)!r} ({KEY_DIR_ENV})"
        )
        if self.fingerprints:
            where += f", pinned to {FINGERPRINTS_ENV}={','.join(self.fingerprints)}"
        return where

    def _locations(self) -> list[Path]:
        """The configured files and directories, where a new file would become trusted."""
        if self.trusted_paths:
            return list(self.trusted_paths)
        return [self.key_dir / PUBLIC_KEY_FILE, self.key_dir / "trusted"]

    def _configured(self, home: Path) -> Iterator[TrustedKey]:
        if not self.trusted_paths:
            _outside(self.key_dir, home, f"the key directory ({KEY_DIR_ENV})")
            yield from _own_key(self.key_dir)
            yield from _directory(self.key_dir / "trusted")
            return
        for path in self.trusted_paths:
            _outside(path, home, f"the trusted key path ({TRUSTED_KEYS_ENV})")
            if path.is_dir():
                yield from _directory(path)
            elif path.exists():
                yield TrustedKey(PublicKey.load(path), path)
            else:
                raise ConfigError(f"{TRUSTED_KEYS_ENV} names {str(path)!r}, which does not exist")

    def _pinned(self, candidates: list[TrustedKey]) -> list[TrustedKey]:
        matched = {
            t.key.fingerprint: t for t in candidates if t.key.fingerprint in self.fingerprints
        }
        for fingerprint in self.fingerprints:
            if fingerprint not in matched:
                log.warning(
                    "pinned key %s (%s) matches no public key in %s or the data home's keys/",
                    fingerprint,
                    FINGERPRINTS_ENV,
                    self.describe(),
                )
        return [matched[f] for f in self.fingerprints if f in matched]


def _outside(path: Path, home: Path, what: str) -> None:
    """Refuse a trust location inside the data home (symbolic links followed)."""
    if path.expanduser().resolve().is_relative_to(home.expanduser().resolve()):
        raise ConfigError(
            f"{what} {str(path)!r} is inside the data home {str(home)!r}, which the server "
            "and its importers write, so keys there cannot decide what is trusted; "
            f"use a directory outside it (default: {default_key_dir()})"
        )


def _own_key(key_dir: Path) -> list[TrustedKey]:
    public, private = key_dir / PUBLIC_KEY_FILE, key_dir / PRIVATE_KEY_FILE
    if public.exists():
        return [TrustedKey(PublicKey.load(public), public)]
    if private.exists():
        return [TrustedKey(SigningKey.load(private).public_key, private)]
    return []


def _directory(path: Path) -> list[TrustedKey]:
    files = sorted(p for p in path.glob("*.pem") if p.is_file()) if path.is_dir() else []
    return [TrustedKey(PublicKey.load(p), p) for p in files]


def _planted(home: Path) -> list[TrustedKey]:
    """Public keys lying in the data home: candidates for pinned fingerprints only."""
    keys = home / "keys"
    files = [keys / PUBLIC_KEY_FILE, *sorted((keys / "trusted").glob("*.pem"))]
    found = []
    for path in (p for p in files if p.is_file()):
        try:
            found.append(TrustedKey(PublicKey.load(path), path))
        except ConfigError as err:  # anyone may write here; a bad file must not stop loading
            log.warning("ignoring %s: %s", path, err)
    return found


def _writable_by_others(path: Path) -> int:
    """The group/other write bits of ``path`` (0 off POSIX or when it is missing)."""
    if os.name != "posix":
        return 0
    try:
        return path.stat().st_mode & 0o022
    except OSError:
        return 0


def _warn_writable(trusted: list[Path]) -> None:
    """Warn about each path, and each path's directory, that group or others may write."""
    for path in dict.fromkeys(p for t in trusted for p in (t, t.parent)):
        if _writable_by_others(path):
            mode = path.stat().st_mode & 0o777
            log.warning(
                "trusted key %s %s is writable by group or others (mode %o): whoever can "
                "write it can make iotml load their model bundles (run: chmod go-w %s)",
                "directory" if path.is_dir() else "file",
                path,
                mode,
                path,
            )


def local_signing_key(home: str | os.PathLike[str] | None = None) -> SigningKey:
    """The signing key configured by the environment (created on first use).

    ``home`` is the data home in use (default ``$IOTML_HOME``); the key must lie outside it.
    """
    return KeyConfig.from_env().signing_key(Settings.from_env().home if home is None else home)


def trusted_public_keys(home: str | os.PathLike[str] | None = None) -> list[PublicKey]:
    """The public keys the environment trusts for bundles in ``home`` (default ``$IOTML_HOME``)."""
    return KeyConfig.from_env().trusted_keys(Settings.from_env().home if home is None else home)
