"""The forecast stage: every meter's forecast recomputed on a schedule and stored as an event.

:class:`ForecastStage` runs a trained :class:`~iotml.forecast.model.ForecastModel` every
``every_s`` seconds of the pipeline's clock (on :meth:`~ForecastStage.tick`, and on
:meth:`~ForecastStage.process` when a run is due, so a pipeline without ticks still
forecasts). Each run reads every covered meter's recent history from the store and emits
one ``forecast`` event per meter: ``ts`` the issue time, ``model`` ``name@version``,
``score`` the first step's point forecast, ``severity`` ``info``, and ``detail``

.. code-block:: json

    {"metric": "power", "interval_s": 3600, "history_end": "...Z",
     "ts": ["...Z", ...], "point": [...],
     "lower": {"0.8": [...], "0.95": [...]}, "upper": {"0.8": [...], "0.95": [...]}}

where ``ts`` are the starts of the forecast buckets. The pipeline stores the events like
any other. A meter whose recent history is too short, broken or stale is skipped and
counted (:attr:`ForecastStage.skipped`), logged once per meter, never fatal.

:func:`latest_forecast` reads the newest stored forecast of a device back (the API and
``iotml forecast show`` use it).
"""

from __future__ import annotations

__all__ = [
    "FORECAST_KIND",
    "ForecastStage",
    "forecast_detail",
    "latest_forecast",
    "load_forecast_stage",
]

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from iotml.errors import ConfigError, InvalidData
from iotml.forecast.model import TASK, ForecastModel, MeterForecast
from iotml.pipeline.stage import Scheduled
from iotml.registry import ModelRegistry
from iotml.store import Store
from iotml.types import Events

log = logging.getLogger("iotml.forecast")

FORECAST_KIND = TASK
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=int(us))).isoformat().replace("+00:00", "Z")


def forecast_detail(fc: MeterForecast) -> dict[str, Any]:
    """A forecast as the JSON-ready ``detail`` of its event (levels keyed ``"0.8"``)."""
    return {
        "metric": fc.metric,
        "interval_s": fc.interval_s,
        "history_end": _iso(fc.history_end_us),
        "ts": [_iso(t) for t in fc.ts_us.tolist()],
        "point": fc.point.tolist(),
        "lower": {f"{k:g}": v.tolist() for k, v in fc.lower.items()},
        "upper": {f"{k:g}": v.tolist() for k, v in fc.upper.items()},
    }


class ForecastStage(Scheduled):
    """Forecast every covered meter on a schedule; one ``forecast`` event per meter."""

    name = "forecast"

    def __init__(
        self,
        model: ForecastModel,
        store: Store,
        *,
        every_s: float = 900.0,
        devices: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(every_s, int | float) or not every_s > 0:
            raise ConfigError(f"every_s={every_s!r} must be a positive number of seconds")
        self.model = model
        self.store = store
        self.every_us = int(every_s * 1e6)
        self.devices = model.devices if devices is None else list(devices)
        for device in self.devices:
            model.forecaster(device)  # an unknown meter is a configuration error, now
        self.skipped: Counter[str] = Counter()
        """Runs in which each meter was skipped for want of usable recent history."""

    # -- the Stage protocol -------------------------------------------------------------

    def close(self) -> None:
        """Nothing to flush: every forecast is an event, stored by the pipeline."""

    # -- forecasting --------------------------------------------------------------------

    def run(self, now: int) -> Events:
        """Forecast now (whatever the schedule) and return the events."""
        when = datetime.fromtimestamp(now / 1e6, tz=UTC)
        records = []
        for device in self.devices:
            try:
                fc = self.model.forecast(self.store, device, now)
            except InvalidData as err:
                if not self.skipped[device]:
                    log.warning("no forecast for %s (counted from now on): %s", device, err)
                self.skipped[device] += 1
                continue
            records.append(self._event(fc, when))
        return Events.from_records(records) if records else Events.empty()

    def _event(self, fc: MeterForecast, when: datetime) -> dict[str, Any]:
        hours = len(fc.point) * fc.interval_s / 3600.0
        message = (
            f"{fc.metric} forecast for the next {hours:g} h: mean {fc.point.mean():.3g}, "
            f"first step {fc.point[0]:.3g}"
        )
        return {
            "ts": when, "device_id": fc.device_id, "kind": FORECAST_KIND,
            "score": float(fc.point[0]), "severity": "info", "model": self.model.ref,
            "message": message, "detail": forecast_detail(fc),
        }  # fmt: skip


def load_forecast_stage(
    spec: str, store: Store, *, home: str | Path | None = None, **options: Any
) -> ForecastStage:
    """A stage for the model ``NAME[@VERSION]`` of the registry in ``home`` ($IOTML_HOME).

    ``options`` go to :class:`ForecastStage` (``every_s``, ``devices``).
    """
    name, _, version = spec.partition("@")
    if not name:
        raise ConfigError(f"forecast model {spec!r} is not NAME or NAME@VERSION")
    model = ForecastModel.load(ModelRegistry(home), name, version or "latest")
    return ForecastStage(model, store, **options)


def latest_forecast(
    store: Store, device_id: str, metric: str | None = None
) -> dict[str, Any] | None:
    """The newest stored forecast of ``device_id`` (of ``metric``, if given), or ``None``.

    The result is the event's ``detail`` with ``device_id``, ``model`` and ``issued``
    (the event's time) added.
    """
    limit: int | None = 1 if metric is None else 64
    while True:
        rows = store.events(device_id, FORECAST_KIND, limit=limit).table.to_pylist()
        for row in reversed(rows):
            detail = orjson.loads(row["detail"])
            if metric is None or detail.get("metric") == metric:
                issued = row["ts"].isoformat().replace("+00:00", "Z")
                return {"device_id": device_id, "model": row["model"], "issued": issued, **detail}
        if limit is None or len(rows) < limit:
            return None
        limit = None if limit >= 4096 else limit * 8  # older forecasts of other metrics
