from __future__ import annotations

from pathlib import Path

import pytest

from iotml.config import Limits, Settings
from iotml.errors import (
    ConfigError,
    InvalidPayload,
    IotmlError,
    MissingExtra,
    PayloadTooLarge,
    SchemaError,
    StoreError,
    StoreUnavailable,
    UnknownDevice,
    require_extra,
)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ConfigError, ValueError),
        (SchemaError, TypeError),
        (SchemaError, ValueError),
        (PayloadTooLarge, ValueError),
        (StoreUnavailable, ConnectionError),
        (StoreError, RuntimeError),
        (UnknownDevice, KeyError),
        (MissingExtra, ImportError),
    ],
)
def test_each_error_is_also_the_natural_builtin(
    cls: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(cls, IotmlError)
    assert issubclass(cls, builtin)


def test_payload_errors_nest() -> None:
    assert issubclass(PayloadTooLarge, InvalidPayload)


def test_unknown_device_message_is_not_quoted() -> None:
    assert str(UnknownDevice("device 'x' is not registered")) == "device 'x' is not registered"


def test_require_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtra, match=r'pip install "iotml\[federated\]"'):
        require_extra("surely_not_installed_flwr", "federated")


def test_settings_from_env_and_defaults(tmp_path: Path) -> None:
    s = Settings.from_env({"IOTML_HOME": str(tmp_path), "IOTML_MAX_FUTURE_S": "60"})
    assert s.home == tmp_path
    assert s.store_path == tmp_path / "iotml.duckdb"
    assert s.limits.max_future_s == 60
    assert Settings.from_env({}).limits == Limits()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IOTML_MAX_PAYLOAD_BYTES": "1MB"}, "IOTML_MAX_PAYLOAD_BYTES='1MB' is not an integer"),
        ({"IOTML_MAX_FUTURE_S": "soon"}, "IOTML_MAX_FUTURE_S='soon' is not a number"),
        ({"IOTML_MAX_RECORDS": "0"}, "max_records must be positive, got 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
