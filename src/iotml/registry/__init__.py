"""Signed model bundles and the local model registry.

A trained model leaves its trainer as a *bundle*: a directory with the model file(s),
``manifest.json`` (name, version, task, input schema, metrics, SHA-256 of every file) and
``manifest.sig`` (Ed25519). Whatever loads a model — the stream pipeline, the edge agent —
verifies the signature first (:func:`load_bundle`). :class:`ModelRegistry` keeps bundles
under ``$IOTML_HOME/models/<name>/<version>/``, signs with the local key pair
(``~/.config/iotml/keys/`` by default, created on first use) and trusts the keys that
configuration outside the data home names (:class:`KeyConfig`; see
:mod:`iotml.registry.trust`).
"""

from __future__ import annotations

__all__ = [
    "LATEST",
    "Bundle",
    "FileEntry",
    "KeyConfig",
    "Manifest",
    "ModelRegistry",
    "PublicKey",
    "SigningKey",
    "TrustedKey",
    "check_name",
    "check_version",
    "key_pair",
    "load_bundle",
    "local_signing_key",
    "save_bundle",
    "sort_versions",
    "trusted_public_keys",
]

from iotml.registry.bundle import Bundle, load_bundle, save_bundle
from iotml.registry.keys import PublicKey, SigningKey, key_pair
from iotml.registry.local import LATEST, ModelRegistry
from iotml.registry.manifest import FileEntry, Manifest
from iotml.registry.trust import KeyConfig, TrustedKey, local_signing_key, trusted_public_keys
from iotml.registry.versions import check_name, check_version, sort_versions
