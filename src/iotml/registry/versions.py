"""Model names and versions: what is safe as a directory name, and how versions order.

A **name** (and a task) is 1-64 characters of letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or digit, so it is always a single, harmless path component.

A **version** is either an integer (``"7"``) or a semantic version
``MAJOR.MINOR.PATCH`` with an optional pre-release (``"1.2.0-rc.1"``). Versions order by
semantic-version precedence, an integer ``N`` counting as ``N.0.0``; so ``"2"`` and
``"2.0.0"`` are the same version and a registry refuses to hold both. Pre-releases sort
before their release; build metadata (``+…``) is refused because it does not order.

>>> sort_versions(["1.10.0", "2", "1.2.0", "1.10.0-rc.1"])
['1.2.0', '1.10.0-rc.1', '1.10.0', '2']
>>> check_version("01")
Traceback (most recent call last):
...
iotml.errors.ConfigError: version='01' is not an integer or a semantic version ...
"""

from __future__ import annotations

__all__ = ["check_name", "check_version", "is_prerelease", "sort_versions", "version_key"]

import re
from collections.abc import Iterable

from iotml.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NUM = r"(?:0|[1-9]\d*)"
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(rf"({_NUM})(?:\.({_NUM})\.({_NUM})(?:-({_IDENT}(?:\.{_IDENT})*))?)?")

# A pre-release identifier's sort key: numeric ones sort before alphanumeric ones.
_Ident = tuple[int, int, str]
VersionKey = tuple[int, int, int, int, tuple[_Ident, ...]]


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a safe model name (see the module docstring), else ConfigError.

    >>> check_name("pump-risk_v2")
    'pump-risk_v2'
    >>> check_name("../etc")
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: name='../etc' is not a valid name; ...
    """
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ConfigError(
            f"{what}={value!r} is not a valid name; use 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return value


def check_version(value: object) -> str:
    """The canonical text of a version given as text or a non-negative integer.

    >>> check_version(3), check_version("1.2.3-beta.2")
    ('3', '1.2.3-beta.2')
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or _VERSION.fullmatch(value) is None or len(value) > 64:
        raise ConfigError(
            f"version={value!r} is not an integer or a semantic version "
            "(e.g. 3, '1.2.0', '1.2.0-rc.1'; no leading zeros, no build metadata)"
        )
    return value


def _ident_key(ident: str) -> _Ident:
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


def version_key(version: str) -> VersionKey:
    """A sort key with semantic-version precedence (``N`` counts as ``N.0.0``).

    >>> version_key("2") == version_key("2.0.0"), version_key("1.0.0-a") < version_key("1.0.0")
    (True, True)
    """
    match = _VERSION.fullmatch(check_version(version))
    assert match is not None  # check_version matched it
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor or 0), int(patch or 0), 1, ())
    return (int(major), int(minor), int(patch), 0, tuple(_ident_key(p) for p in pre.split(".")))


def is_prerelease(version: str) -> bool:
    """Whether ``version`` is a pre-release (``1.2.0-rc.1``).

    >>> is_prerelease("1.2.0-rc.1"), is_prerelease("4")
    (True, False)
    """
    return version_key(version)[3] == 0


def sort_versions(versions: Iterable[str]) -> list[str]:
    """``versions`` from the lowest to the highest precedence."""
    return sorted(versions, key=version_key)
