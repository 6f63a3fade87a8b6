"""Signed model bundles and the local model registry.

A trained model leaves its trainer as a *bundle*: a directory with the model file(s),
``manifest.json`` (name, version, task, input schema, metrics, SHA-256 of every file) and
``manifest.sig`` (Ed25519). Whatever loads a model — the stream pipeline, the edge agent —
verifies the signature first (:func:`load_bundle`). :class:`ModelRegistry` keeps bundles
under ``$IOTML_HOME/models/<name>/<version>/`` and signs with the home's key pair
(``$IOTML_HOME/keys/``, created on first use; see :mod:`iotml.registry.keys`).
"""

from __future__ import annotations

__all__ = [
    "LATEST",
    "Bundle",
    "FileEntry",
    "Manifest",
    "ModelRegistry",
    "PublicKey",
    "SigningKey",
    "check_name",
    "check_version",
    "home_signing_key",
    "home_trusted_keys",
    "load_bundle",
    "save_bundle",
    "sort_versions",
]

from iotml.registry.bundle import Bundle, load_bundle, save_bundle
from iotml.registry.keys import PublicKey, SigningKey, home_signing_key, home_trusted_keys
from iotml.registry.local import LATEST, ModelRegistry
from iotml.registry.manifest import FileEntry, Manifest
from iotml.registry.versions import check_name, check_version, sort_versions
