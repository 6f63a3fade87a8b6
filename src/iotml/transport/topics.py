"""Topic templates: where in an MQTT topic the device id sits.

>>> t = TopicTemplate("devices/{device_id}/telemetry")
>>> t.filter, t.device("devices/pump-7/telemetry"), t.device("other/x")
('devices/+/telemetry', 'pump-7', None)
>>> TopicTemplate("site/{site}/{device_id}/#").device("site/a/press-4/senml/json")
'press-4'
"""

from __future__ import annotations

__all__ = ["TopicTemplate"]

import re

from iotml.errors import ConfigError

_FIELD = re.compile(r"\{(\w+)\}")


class TopicTemplate:
    """A topic pattern with ``{device_id}`` (and other ``{name}`` levels) as wildcards."""

    def __init__(self, template: str) -> None:
        levels = template.split("/")
        if "{device_id}" not in levels:
            raise ConfigError(
                f"topic template {template!r} has no '{{device_id}}' level; "
                "e.g. devices/{device_id}/telemetry"
            )
        if "#" in levels[:-1]:
            raise ConfigError(f"topic template {template!r}: '#' may only be the last level")
        self.template = template
        self.filter = "/".join("+" if _FIELD.fullmatch(lv) else lv for lv in levels)
        pattern = []
        for level in levels:
            field = _FIELD.fullmatch(level)
            if field:
                pattern.append(f"(?P<{field.group(1)}>[^/]+)")
            elif level == "+":
                pattern.append("[^/]+")
            elif level == "#":
                pattern.append(".*")
            else:
                pattern.append(re.escape(level))
        self._regex = re.compile("/".join(pattern).replace("/.*", "(?:/.*)?"))

    def device(self, topic: str) -> str | None:
        """The device id in ``topic``, or ``None`` when the topic does not match."""
        match = self._regex.fullmatch(topic)
        return match.group("device_id") if match else None

    def shared(self, group: str | None) -> str:
        """The subscription filter, as an MQTT v5 shared subscription when ``group`` is set."""
        return f"$share/{group}/{self.filter}" if group else self.filter
