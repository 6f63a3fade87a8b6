"""Mosquitto's access control for iotml: each device login bound to its own topics.

The embedded broker binds logins itself (:mod:`iotml.transport._broker_auth`). An external
Mosquitto does the same with an ACL file (``acl_file``) that :func:`mosquitto_acl` writes
(``iotml devices acl``): the ingester's login reads the telemetry of every device and
writes alerts and commands; every other login — a device, whose user name is its device
id — may write only its own telemetry topic and read only its own command and alert
topics (``%u`` is Mosquitto's placeholder for the user name). A template's other
``{name}`` levels become ``+``; a final ``#`` stays. Pair it with
``use_username_as_clientid true`` (no login can take another's client id, so none can
kick the ingester off) and ``allow_anonymous false``; see docs/live.md.

>>> print(mosquitto_acl("iotml-ingest"), end="")
# iotml: written by `iotml devices acl`; load with `acl_file` in mosquitto.conf
<BLANKLINE>
# the ingester: every device's telemetry in, alerts and commands out
user iotml-ingest
topic read devices/+/telemetry
topic write alerts/+/+
topic write devices/+/cmd
<BLANKLINE>
# every device login (user name = device id): its own topics only
pattern write devices/%u/telemetry
pattern read devices/%u/cmd
pattern read alerts/%u/+
"""

from __future__ import annotations

__all__ = ["mosquitto_acl"]

from collections.abc import Sequence

from iotml.errors import ConfigError
from iotml.transport.topics import _FIELD, TopicTemplate


def _levels(template: str, device: str) -> str:
    TopicTemplate(template)  # a template without a device level is refused here
    return "/".join(
        device if lv == "{device_id}" else "+" if _FIELD.fullmatch(lv) else lv
        for lv in template.split("/")
    )


def mosquitto_acl(
    service_user: str,
    *,
    telemetry: str = "devices/{device_id}/telemetry",
    alerts: Sequence[str] = ("alerts/{device_id}/{kind}",),
    commands: Sequence[str] = ("devices/{device_id}/cmd",),
) -> str:
    """The text of a Mosquitto ACL file for these topic templates (see the module)."""
    if not service_user or any(c.isspace() for c in service_user):
        raise ConfigError(f"the ingester's user name {service_user!r} must be one word")
    out = list(alerts) + list(commands)
    lines = [
        "# iotml: written by `iotml devices acl`; load with `acl_file` in mosquitto.conf",
        "",
        "# the ingester: every device's telemetry in, alerts and commands out",
        f"user {service_user}",
        f"topic read {_levels(telemetry, '+')}",
        *(f"topic write {_levels(t, '+')}" for t in out),
        "",
        "# every device login (user name = device id): its own topics only",
        f"pattern write {_levels(telemetry, '%u')}",
        *(f"pattern read {_levels(t, '%u')}" for t in (*commands, *alerts)),
    ]
    return "\n".join(lines) + "\n"
