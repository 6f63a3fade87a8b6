"""The maintenance stage: every machine scored on a schedule, warnings raised before failures.

:class:`MaintenanceStage` runs a trained :class:`~iotml.maintenance.MaintenanceModel` over
the store every ``every_s`` seconds of the pipeline's clock (on :meth:`tick`, and on
:meth:`process` when a tick is due, so a pipeline without ticks still scores). Each run
emits, per machine the model applies to,

* a ``failure_risk`` event (``score`` = the probability of a failure within the model's
  horizon) or a ``rul`` event (``score`` and ``detail.rul_h`` = remaining useful life in
  hours), ``severity`` ``info``, ``model`` = ``name@version``;
* a ``maintenance-alert`` event when the risk reaches ``risk_threshold`` or the RUL falls
  to ``rul_threshold`` hours — once per episode: the machine is re-armed only when the
  risk drops below ``risk_rearm`` (default ``risk_threshold - 0.1``) or the RUL rises above
  ``rul_rearm`` (default ``1.25 * rul_threshold``), so a score hovering at the threshold
  does not alert again and again. The alert is ``critical`` at a risk of
  ``critical_risk`` or more (or a RUL of half the threshold or less), else ``warning``,
  and its message names the features that moved the score most.

Which machines are alerting is kept in the store (``save_state``), so a restarted
pipeline does not repeat alerts already raised.
"""

from __future__ import annotations

__all__ = ["ALERT_KIND", "MaintenanceStage", "load_maintenance_stage"]

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from iotml.errors import ConfigError
from iotml.maintenance.model import TASKS, MaintenanceModel, Prediction
from iotml.pipeline.stage import Scheduled
from iotml.registry import ModelRegistry
from iotml.store import Store
from iotml.types import Events

log = logging.getLogger("iotml.maintenance")

ALERT_KIND = "maintenance-alert"


def _fraction(value: float | None, name: str) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} must be a probability in [0, 1]")
    return value


class MaintenanceStage(Scheduled):
    """Score every machine on a schedule; alert once per episode of high risk / low RUL."""

    name = "maintenance"

    def __init__(
        self,
        model: MaintenanceModel,
        store: Store,
        *,
        every_s: float = 60.0,
        risk_threshold: float = 0.5,
        rul_threshold: float | None = None,
        risk_rearm: float | None = None,
        rul_rearm: float | None = None,
        critical_risk: float = 0.9,
        devices: Iterable[str] | None = None,
    ) -> None:
        if not every_s > 0:
            raise ConfigError(f"every_s={every_s!r} must be a positive number of seconds")
        if model.task == "rul" and (rul_threshold is None or not rul_threshold > 0):
            raise ConfigError(
                f"rul_threshold={rul_threshold!r}: a RUL model needs a positive threshold (hours)"
            )
        self.model = model
        self.store = store
        self.every_us = int(every_s * 1e6)
        self.risk_threshold = float(_fraction(risk_threshold, "risk_threshold") or 0.0)
        rearm = max(0.0, self.risk_threshold - 0.1) if risk_rearm is None else risk_rearm
        self.risk_rearm = float(_fraction(rearm, "risk_rearm") or 0.0)
        self.critical_risk = float(_fraction(critical_risk, "critical_risk") or 0.0)
        self.rul_threshold = rul_threshold
        self.rul_rearm = None if rul_threshold is None else (rul_rearm or 1.25 * rul_threshold)
        self.devices = None if devices is None else list(devices)
        self.state_key = f"maintenance/{model.ref}"
        self.alerting: set[str] = self._restore()

    # -- the Stage protocol -------------------------------------------------------------

    def close(self) -> None:
        """Nothing to flush: the alert state is saved whenever it changes."""

    # -- scoring ------------------------------------------------------------------------

    def run(self, now: int) -> Events:
        """Score now (whatever the schedule) and return the events."""
        predictions = self.model.score(self.store, self.devices, now)
        when = datetime.fromtimestamp(now / 1e6, tz=UTC)
        records = [self._score_event(p, when) for p in predictions]
        before = set(self.alerting)
        records += [a for p in predictions if (a := self._alert(p, when)) is not None]
        if self.alerting != before:
            self._save()
        return Events.from_records(records) if records else Events.empty()

    def _score_event(self, p: Prediction, when: datetime) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "features_ts": p.ts.isoformat(),
            "reasons": list(p.reasons),
            "features": list(p.features),
        }
        if self.model.task == "rul":
            detail["rul_h"] = p.value
            message = f"remaining useful life {p.value:.1f} h"
        else:
            detail["risk"] = p.value
            detail["horizon_h"] = (self.model.horizon_s or 0.0) / 3600.0
            message = f"failure risk {p.value:.2f} within {_hours(self.model.horizon_s)}"
        return self._event(p, when, TASKS[self.model.task], "info", message, detail)

    def _alert(self, p: Prediction, when: datetime) -> dict[str, Any] | None:
        """An alert record when ``p`` starts an episode; updates the armed state."""
        if self.model.task == "rul":
            assert self.rul_threshold is not None
            assert self.rul_rearm is not None
            high, calm = p.value <= self.rul_threshold, p.value > self.rul_rearm
            critical = p.value <= self.rul_threshold / 2
            what = f"remaining useful life {p.value:.1f} h <= {self.rul_threshold:g} h"
        else:
            high, calm = p.value >= self.risk_threshold, p.value < self.risk_rearm
            critical = p.value >= self.critical_risk
            what = (
                f"failure risk {p.value:.2f} >= {self.risk_threshold:g} "
                f"within {_hours(self.model.horizon_s)}"
            )
        if calm:
            self.alerting.discard(p.device_id)
        if not high or p.device_id in self.alerting:
            return None
        self.alerting.add(p.device_id)
        because = "; ".join(p.reasons) or "no single feature stands out"
        message = f"{p.device_id}: {what} — {because}"
        detail = {"value": p.value, "reasons": list(p.reasons), "features": list(p.features)}
        severity = "critical" if critical else "warning"
        return self._event(p, when, ALERT_KIND, severity, message, detail)

    def _event(
        self, p: Prediction, when: datetime, kind: str, severity: str, message: str,
        detail: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "ts": when, "device_id": p.device_id, "kind": kind, "score": p.value,
            "severity": severity, "model": self.model.ref, "message": message,
            "detail": detail,
        }  # fmt: skip

    # -- state --------------------------------------------------------------------------

    def _save(self) -> None:
        self.store.save_state(self.state_key, orjson.dumps(sorted(self.alerting)))

    def _restore(self) -> set[str]:
        data = self.store.load_state(self.state_key)
        if data is None:
            return set()
        try:
            names = orjson.loads(data)
        except orjson.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            log.warning("ignoring malformed maintenance state %r", self.state_key)
            return set()
        return set(names)


def _hours(seconds: float | None) -> str:
    hours = (seconds or 0.0) / 3600.0
    return f"{hours:g} h"


def load_maintenance_stage(
    spec: str, store: Store, *, home: str | Path | None = None, **options: Any
) -> MaintenanceStage:
    """A stage for the model ``NAME[@VERSION]`` of the registry in ``home`` ($IOTML_HOME).

    ``options`` go to :class:`MaintenanceStage` (``every_s``, ``risk_threshold``, ...).
    """
    name, _, version = spec.partition("@")
    if not name:
        raise ConfigError(f"maintenance model {spec!r} is not NAME or NAME@VERSION")
    model = MaintenanceModel.load(ModelRegistry(home), name, version or "latest")
    return MaintenanceStage(model, store, **options)
