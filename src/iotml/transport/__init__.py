"""Transports: how payloads reach the pipeline (MQTT now, extra ``mqtt``)."""

from __future__ import annotations

from iotml.transport.topics import TopicTemplate

__all__ = ["TopicTemplate"]
