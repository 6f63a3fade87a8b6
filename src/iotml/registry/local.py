"""A model registry in a directory: ``<home>/models/<name>/<version>/`` holds one bundle.

Versions of a model order as :mod:`iotml.registry.versions` says; ``"latest"`` resolves to
the highest release, or the highest pre-release when a model has only pre-releases.
Saving signs with the local key (created on first use) unless another key is given;
loading trusts the configured keys unless others are given — both from a
:class:`~iotml.registry.trust.KeyConfig`, by default read from the environment, never from
the data home. Loading also checks that the signed manifest names the model and version of
the directory it was found in — so an old or foreign bundle copied over a newer version is
refused, not loaded.

Names other than versions (``latest`` today; aliases such as ``production`` later) are
resolved by :meth:`ModelRegistry.resolve`, the one place a rollback would change.

>>> import tempfile
>>> from iotml.registry.keys import SigningKey
>>> key = SigningKey.generate()
>>> with tempfile.TemporaryDirectory() as home:
...     registry = ModelRegistry(home)
...     for version in ("1.0.0", "1.1.0", "1.2.0-rc.1"):
...         _ = registry.save("pump-risk", version, task="failure_risk",
...                           files={"model.onnx": b"graph"}, key=key)
...     registry.versions("pump-risk"), registry.resolve("pump-risk")
...     registry.load("pump-risk", trusted_keys=key.public_key).data["model.onnx"]
(['1.0.0', '1.1.0', '1.2.0-rc.1'], '1.1.0')
b'graph'
"""

from __future__ import annotations

__all__ = ["LATEST", "ModelRegistry"]

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from iotml.config import Settings
from iotml.errors import BundleError, ConfigError, UnknownModel, UntrustedBundle
from iotml.registry.bundle import Bundle, load_bundle, save_bundle
from iotml.registry.keys import PublicKey, SigningKey
from iotml.registry.manifest import Manifest
from iotml.registry.trust import KeyConfig
from iotml.registry.versions import (
    check_name,
    check_version,
    is_prerelease,
    sort_versions,
    version_key,
)

LATEST = "latest"


class ModelRegistry:
    """Bundles under ``<home>/models``; ``home`` defaults to ``$IOTML_HOME``.

    ``keys`` says where the signing key lives and which keys are trusted (default:
    :meth:`KeyConfig.from_env() <iotml.registry.trust.KeyConfig.from_env>`).
    """

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, keys: KeyConfig | None = None
    ) -> None:
        self.home = Settings.from_env().home if home is None else Path(home)
        self.root = self.home / "models"
        self.keys = KeyConfig.from_env() if keys is None else keys

    def names(self) -> list[str]:
        """Every model with at least one version, sorted."""
        if not self.root.is_dir():
            return []
        dirs = [p.name for p in self.root.iterdir() if p.is_dir() and self._valid(p.name)]
        return sorted(n for n in dirs if self.versions(n))

    def versions(self, name: str) -> list[str]:
        """The versions of ``name``, lowest first (empty if it has none)."""
        model_dir = self.root / check_name(name, "name")
        if not model_dir.is_dir():
            return []
        found = [p.name for p in model_dir.iterdir() if p.is_dir() and _is_version(p.name)]
        return sort_versions(found)

    def resolve(self, name: str, version: str | int = LATEST) -> str:
        """The version ``version`` means for ``name``; UnknownModel if there is none."""
        versions = self.versions(name)
        if version == LATEST:
            releases = [v for v in versions if not is_prerelease(v)]
            if not versions:
                raise UnknownModel(f"model {name!r} has no versions in {self.root}")
            return (releases or versions)[-1]
        wanted = version_key(check_version(version))
        for have in versions:
            if version_key(have) == wanted:
                return have
        raise UnknownModel(
            f"model {name!r} has no version {str(version)!r}; it has {versions or 'none'}"
        )

    def path(self, name: str, version: str | int = LATEST) -> Path:
        """The directory of a bundle (``version`` may be ``"latest"``)."""
        return self.root / name / self.resolve(name, version)

    def save(
        self,
        name: str,
        version: str | int,
        *,
        task: str,
        key: SigningKey | None = None,
        objects: Mapping[str, Any] | None = None,
        files: Mapping[str, bytes | Path] | None = None,
        input_schema: Any = None,
        metrics: Mapping[str, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Sign and store a new version (see :func:`~iotml.registry.save_bundle`).

        A version equal in precedence to an existing one (``2`` and ``2.0.0``) is refused.
        """
        text = check_version(version)
        existing = [v for v in self.versions(name) if version_key(v) == version_key(text)]
        if existing:
            raise ConfigError(
                f"model {name!r} already has version {existing[0]!r}; versions are immutable"
            )
        return save_bundle(
            self.root / check_name(name, "name") / text,
            name=name,
            version=text,
            task=task,
            key=key or self.keys.signing_key(self.home),
            objects=objects,
            files=files,
            input_schema=input_schema,
            metrics=metrics,
            meta=meta,
        )

    def load(
        self,
        name: str,
        version: str | int = LATEST,
        *,
        trusted_keys: PublicKey | Iterable[PublicKey] | None = None,
    ) -> Bundle:
        """Verify and load a version; trusts the configured keys unless ``trusted_keys`` is
        given."""
        resolved = self.resolve(name, version)
        keys = self.keys.trusted_keys(self.home) if trusted_keys is None else trusted_keys
        if trusted_keys is None and not keys:
            raise ConfigError(
                f"no key to trust in {self.keys.describe()}; train a model on this machine "
                "(creating its key), put a public key in the key directory's trusted/, or "
                "set IOTML_TRUSTED_KEYS or IOTML_TRUSTED_FINGERPRINTS"
            )
        try:
            bundle = load_bundle(self.root / name / resolved, trusted_keys=keys)
        except UntrustedBundle as err:
            if trusted_keys is None and (self.home / "keys").is_dir():
                raise UntrustedBundle(
                    f"{err}. Keys in {self.home / 'keys'} are not trusted (the data home is "
                    f"writable); trusted keys come from {self.keys.describe()}"
                ) from err
            raise
        signed = (bundle.manifest.name, bundle.manifest.version)
        if signed != (name, resolved):
            raise BundleError(
                f"{bundle.directory} holds a bundle signed as {signed[0]}@{signed[1]}, not "
                f"{name}@{resolved}: a bundle was copied into the wrong place"
            )
        return bundle

    @staticmethod
    def _valid(name: str) -> bool:
        try:
            check_name(name)
        except ConfigError:
            return False
        return True


def _is_version(text: str) -> bool:
    try:
        check_version(text)
    except ConfigError:
        return False
    return True
