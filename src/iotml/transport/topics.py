"""Topic templates: where in an MQTT topic the device id sits; which topics a publish may use.

>>> t = TopicTemplate("devices/{device_id}/telemetry")
>>> t.filter, t.device("devices/pump-7/telemetry"), t.device("other/x")
('devices/+/telemetry', 'pump-7', None)
>>> TopicTemplate("site/{site}/{device_id}/#").device("site/a/press-4/senml/json")
'press-4'
"""

from __future__ import annotations

__all__ = ["TopicTemplate", "publish_topic_problem"]

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

    def owned_by(self, topic: str, device: str) -> bool:
        """Whether ``topic`` (a topic or a subscription filter) names only ``device``'s topics.

        The ``{device_id}`` level must be ``device`` itself; literal levels must match; other
        ``{name}`` and ``+`` levels may be anything, ``+`` included; a filter's ``#`` is
        allowed only where every level it covers is free (never over a device level).

        >>> t = TopicTemplate("alerts/{device_id}/{kind}")
        >>> [t.owned_by(x, "a") for x in ("alerts/a/stale", "alerts/a/+", "alerts/a/#",
        ...                                "alerts/b/stale", "alerts/+/stale", "#", "alerts/a")]
        [True, True, True, False, False, False, False]
        """
        mine, theirs = self.template.split("/"), topic.split("/")
        for k, level in enumerate(mine):
            if level == "#":
                return True
            if k >= len(theirs):
                return False
            given = theirs[k]
            if given == "#":
                return all(_free(rest) for rest in mine[k:])
            if level == "{device_id}":
                if given != device:
                    return False
            elif not _free(level) and given != level:
                return False
        return len(theirs) == len(mine)

    def shared(self, group: str | None) -> str:
        """The subscription filter, as an MQTT v5 shared subscription when ``group`` is set."""
        return f"$share/{group}/{self.filter}" if group else self.filter


def _free(level: str) -> bool:
    """A template level any value may fill (not the device's, not a literal)."""
    return level in ("+", "#") or (level != "{device_id}" and _FIELD.fullmatch(level) is not None)


def publish_topic_problem(topic: str) -> str | None:
    """Why no MQTT client can publish on ``topic``, or ``None`` when one can.

    A publish names one topic: no wildcard (``+``, ``#``), no NUL, no empty level (MQTT
    allows those, but they only arise here from an empty field), not under the brokers'
    own ``$`` topics, at most 65,535 bytes of UTF-8.

    >>> publish_topic_problem("alerts/pump-1/out-of-range") is None
    True
    >>> publish_topic_problem("alerts/a+b/out-of-range")
    "topic 'alerts/a+b/out-of-range' holds the MQTT wildcard '+'; a publish names one topic"
    """
    shown = repr(topic) if len(topic) <= 80 else repr(topic[:60]) + f"... ({len(topic)} chars)"
    for char in "+#\0":
        if char in topic:
            what = "the NUL character" if char == "\0" else f"the MQTT wildcard {char!r}"
            return f"topic {shown} holds {what}; a publish names one topic"
    if "" in topic.split("/"):
        return f"topic {shown} has an empty level"
    if topic.startswith("$"):
        return f"topic {shown} starts with '$', which brokers keep for themselves"
    if len(topic.encode("utf-8", "surrogatepass")) > 65_535:
        return f"topic {shown} is longer than the 65,535 bytes MQTT allows"
    return None
