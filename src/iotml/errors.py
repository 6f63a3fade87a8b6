"""The iotml exception tree.

Every error iotml raises on purpose derives from :class:`IotmlError`, and each class also
inherits the built-in exception a caller would naturally catch, so ``except ValueError``
keeps working for code that does not know iotml::

    IotmlError
    ├── ConfigError (ValueError)          a setting or argument is invalid
    ├── InvalidData (ValueError)          data does not meet iotml's contracts
    │   ├── SchemaError (TypeError)       a Batch/Events column has the wrong name, type or nulls
    │   └── InvalidPayload                bytes could not be decoded at all (rejected whole)
    │       ├── PayloadTooLarge           over the configured byte or record limit
    │       └── UnsupportedFormat         the content type or file layout is not one we read
    ├── StoreError (RuntimeError)         the store failed to read or write
    │   └── StoreUnavailable (ConnectionError)  the database cannot be opened or reached
    ├── BundleError (ValueError)          a model bundle is malformed, incomplete or altered
    │   └── UntrustedBundle               its signature does not verify against a trusted key
    ├── UnknownDevice (KeyError)          a device id that is not registered
    ├── UnknownModel (KeyError)           a model name or version the registry does not hold
    ├── DeviceUnavailable (ConnectionError)  a broker or device cannot be reached
    └── MissingExtra (ImportError)        an optional dependency is not installed

Messages name the field, the offending value (``!r``) and what is accepted. Errors raised
while handling a library exception chain it (``raise ... from err``), so nothing above the
I/O layer ever has to catch ``duckdb`` or ``paho`` exceptions.

>>> try:
...     raise InvalidPayload("field 'v': expected a number, got 'abc'")
... except ValueError as err:
...     print(type(err).__name__, err)
InvalidPayload field 'v': expected a number, got 'abc'
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "DeviceUnavailable",
    "InvalidData",
    "InvalidPayload",
    "IotmlError",
    "MissingExtra",
    "PayloadTooLarge",
    "SchemaError",
    "StoreError",
    "StoreUnavailable",
    "UnknownDevice",
    "UnknownModel",
    "UnsupportedFormat",
    "UntrustedBundle",
    "require_extra",
]

import importlib
from types import ModuleType


class IotmlError(Exception):
    """Root of every exception iotml raises deliberately."""


class ConfigError(IotmlError, ValueError):
    """A setting, environment variable or argument has an invalid value."""


class InvalidData(IotmlError, ValueError):
    """Data does not satisfy an iotml contract (types, ranges, finiteness)."""


class SchemaError(InvalidData, TypeError):
    """A table's columns have the wrong names, types or contain nulls."""


class InvalidPayload(InvalidData):
    """A payload could not be decoded at all and is rejected whole."""


class PayloadTooLarge(InvalidPayload):
    """A payload exceeds the configured size or record-count limit."""


class UnsupportedFormat(InvalidPayload):
    """The content type, file extension or table layout is not one iotml reads."""


class StoreError(IotmlError, RuntimeError):
    """The store failed to execute a read or write."""


class StoreUnavailable(StoreError, ConnectionError):
    """The store's database cannot be opened or reached."""


class UnknownDevice(IotmlError, KeyError):
    """A device id that is not registered where registration is required."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


class UnknownModel(IotmlError, KeyError):
    """A model name, version or alias that the model registry does not hold."""

    def __str__(self) -> str:  # as UnknownDevice: the plain message, not its repr
        return str(self.args[0]) if self.args else ""


class BundleError(IotmlError, ValueError):
    """A model bundle is malformed, incomplete, or a file in it is not what was signed."""


class UntrustedBundle(BundleError):
    """A model bundle's signature is missing or does not verify against any trusted key."""


class DeviceUnavailable(IotmlError, ConnectionError):
    """A broker, device or remote endpoint cannot be reached."""


class MissingExtra(IotmlError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require_extra(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming the pip extra.

    >>> require_extra("json", "core").__name__
    'json'
    >>> require_extra("no_such_module_xyz", "nn")
    Traceback (most recent call last):
    ...
    iotml.errors.MissingExtra: no_such_module_xyz is not installed: pip install "iotml[nn]"
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(f'{module} is not installed: pip install "iotml[{extra}]"') from err
