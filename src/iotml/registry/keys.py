"""Ed25519 keys that sign model bundles, and the local key pair.

A :class:`SigningKey` signs; its :class:`PublicKey` verifies and is what a device or
server is given to trust. Both are stored as PEM (PKCS#8 private keys, written ``0600``;
SubjectPublicKeyInfo public keys). A key's :attr:`~PublicKey.fingerprint` is the SHA-256
of its raw public bytes (``sha256:`` and 64 hex digits) and its :attr:`~PublicKey.key_id`
the first 16 of those digits; manifests record the key id so a reader can tell which key
signed a bundle, and a server can pin fingerprints (see :mod:`iotml.registry.trust`).

:func:`key_pair` returns the key pair of a directory — ``signing.pem`` and
``signing.pub.pem`` beside it, directory ``0700`` — creating it on first use. Which
directory, and which keys a server trusts, is configuration: :mod:`iotml.registry.trust`.
Private keys are refused when group or others may read them, as ssh does.

>>> key = SigningKey.generate()
>>> signature = key.sign(b"manifest")
>>> key.public_key.verify(b"manifest", signature), key.public_key.verify(b"other", signature)
(True, False)
>>> PublicKey.from_pem(key.public_key.to_pem()).key_id == key.public_key.key_id
True
"""

from __future__ import annotations

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "PublicKey",
    "SigningKey",
    "key_pair",
]

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iotml.errors import ConfigError

PRIVATE_KEY_FILE = "signing.pem"
PUBLIC_KEY_FILE = "signing.pub.pem"
_RAW = serialization.Encoding.Raw


class PublicKey:
    """An Ed25519 public key that verifies bundle signatures."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str = "public key") -> PublicKey:
        """Read a PEM SubjectPublicKeyInfo Ed25519 key; ``source`` names it in errors."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as err:
            raise ConfigError(f"{source} is not a PEM public key: {err}") from err
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{source} is a {type(key).__name__}, expected an Ed25519 key")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PublicKey:
        """Read a PEM public key file."""
        return cls.from_pem(_read(Path(path)), source=f"public key file {str(path)!r}")

    def to_pem(self) -> bytes:
        """The key as PEM text (bytes)."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def fingerprint(self) -> str:
        """``sha256:`` and the 64 hex digits of the SHA-256 of the key's raw bytes."""
        raw = self._key.public_bytes(_RAW, serialization.PublicFormat.Raw)
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    @property
    def key_id(self) -> str:
        """16 hex digits identifying the key (the start of its fingerprint)."""
        return self.fingerprint[7:23]

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self.key_id!r})"


class SigningKey:
    """An Ed25519 private key that signs bundle manifests."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, check_permissions: bool = True) -> SigningKey:
        """Read an unencrypted PKCS#8 PEM key; refuse one that group or others can read."""
        path = Path(path)
        if check_permissions and os.name == "posix" and path.exists():
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(
                    f"private key {str(path)!r} has mode {mode:o}; other users may read it "
                    f"(run: chmod 600 {path})"
                )
        try:
            key = serialization.load_pem_private_key(_read(path), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ConfigError(f"{str(path)!r} is not an unencrypted PEM private key") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{str(path)!r} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def _pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key (PKCS#8 PEM, mode 0600); an existing file is never overwritten."""
        pem = self._pem()
        if not _create_exclusive(Path(path), pem, 0o600):
            raise ConfigError(f"key file {str(path)!r} already exists; not overwriting it")

    @property
    def public_key(self) -> PublicKey:
        """The matching public key, to hand to whoever verifies."""
        return PublicKey(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(key_id={self.public_key.key_id!r})"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read key file {str(path)!r}: {err.strerror}") from err


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to a new file ``path`` atomically; ``False`` if ``path`` exists.

    The bytes go to a private temporary file first and are then hard-linked into place,
    which fails if ``path`` exists; so two processes racing to create the home key end up
    with one key, and the loser loads the winner's. Readers never see a partial key.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise ConfigError(f"cannot write key file {str(path)!r}: {err.strerror}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return True


def key_pair(directory: str | os.PathLike[str]) -> SigningKey:
    """The signing key in ``directory`` (``signing.pem``), created on first use.

    A new key is written ``0600`` in a directory created ``0700``, with its public key
    (``signing.pub.pem``) beside it; two processes creating it at once end up with one key.
    """
    keys = Path(directory)
    private = keys / PRIVATE_KEY_FILE
    if not private.exists():
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        # False when another process created it first: then that key is the one used.
        _create_exclusive(private, SigningKey.generate()._pem(), 0o600)
    key = SigningKey.load(private)
    public = keys / PUBLIC_KEY_FILE
    if not public.exists():
        _create_exclusive(public, key.public_key.to_pem(), 0o644)
    return key
