"""The deployable forecast model: per-meter forecasters trained from the store, as a bundle.

A :class:`ForecastModel` forecasts one ``metric`` (e.g. ``"power"``) of a set of meters:

* the **input schema** — the metric, resampled on a grid of width ``interval`` (the mean
  per bucket, gaps of up to ``max_gap`` buckets interpolated:
  :func:`~iotml.forecast.store.load_series`), ``lookback`` buckets read per forecast,
  ``horizon`` buckets forecast, interval ``levels``;
* the **forecasters** — one :class:`~iotml.forecast.Forecaster` per meter, of any model
  name in :data:`~iotml.forecast.forecaster.MODELS`.

**One forecaster per meter**, not one shared across meters: meters differ in level,
habits and heating, their histories start, stop and break at different times, and a
meter that is offline or new must neither block the others at training nor at forecast
time. Each meter gets its own standardisation, model and conformal interval widths, and a
meter whose history cannot be used is skipped with the reason (:attr:`skipped_`). The
ridge fit is closed-form, so a fleet of meters costs little to train; the price is that
each meter needs enough history of its own (about ``(lookback + horizon) / 0.6`` buckets,
the :class:`~iotml.forecast.Forecaster` says exactly how many when there are too few).

Training metrics, in the metric's units and pooled over every meter's windows: MSE/MAE
on each meter's **validation** part (the ridge penalty was chosen there, so they are
slightly optimistic), MSE/MAE on the **calibration** part (never seen by the point
model), and the intervals' coverage on the calibration part — the part whose errors set
the widths, so it lands at about the nominal rate by construction; it shows that the
calibration worked, not how the intervals will do later.

The store and the registry are passed in, never imported: this module does no I/O itself.
"""

from __future__ import annotations

__all__ = ["TASK", "ForecastModel", "MeterForecast"]

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from iotml.errors import BundleError, ConfigError, InvalidData
from iotml.forecast.forecaster import MODELS, Forecaster
from iotml.forecast.intervals import coverage
from iotml.forecast.store import Series, load_series

if TYPE_CHECKING:
    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest
    from iotml.store.base import Store

TASK = "forecast"
"""The bundle's task (and the kind of the events the forecast stage emits)."""

Array = npt.NDArray[np.float64]
_FILE = "forecasters.joblib"
_DAY_S = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MeterForecast:
    """One meter's forecast: ``ts`` the start of each forecast bucket (epoch µs), ``point``
    and ``lower``/``upper`` per level, each ``(horizon,)`` in the metric's units, made from
    the buckets up to ``history_end_us``."""

    device_id: str
    metric: str
    interval_s: float
    ts_us: npt.NDArray[np.int64]
    point: Array
    lower: dict[float, Array]
    upper: dict[float, Array]
    history_end_us: int


class ForecastModel:
    """``horizon`` buckets of ``metric`` ahead per meter, with conformal intervals.

    Parameters
    ----------
    metric
        The metric forecast (every meter reports it).
    interval
        Bucket width of the resampled series (a forecast step).
    lookback, horizon
        Buckets read per forecast, buckets forecast.
    model
        Any name in :data:`~iotml.forecast.forecaster.MODELS` (``"ridge"``, ...).
    levels
        Nominal coverages of the intervals.
    max_gap
        Empty buckets interpolated; a longer gap makes a meter's history unusable there.
    """

    def __init__(
        self,
        metric: str = "power",
        *,
        interval: timedelta = timedelta(hours=1),
        lookback: int = 168,
        horizon: int = 24,
        model: str = "ridge",
        levels: Sequence[float] = (0.8, 0.95),
        max_gap: int = 3,
    ) -> None:
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"metric is {metric!r}; expected a metric name such as 'power'")
        if model not in MODELS:
            raise ConfigError(f"model is {model!r}; expected one of {MODELS}")
        if not isinstance(interval, timedelta) or interval <= timedelta(0):
            raise ConfigError(f"interval is {interval!r}; expected a positive timedelta")
        self.metric = metric
        self.interval = interval
        self.lookback = lookback
        self.horizon = horizon
        self.model = model
        self.levels = tuple(float(x) for x in levels)
        self.max_gap = max_gap
        self.forecasters_: dict[str, Forecaster] = {}
        self.skipped_: dict[str, str] = {}
        self.metrics_: dict[str, float] = {}
        self.span_: tuple[str, str] | None = None
        self.ref = f"{TASK}@unsaved"
        Forecaster(model, lookback, horizon, self.levels, self.period)._check_params()

    @property
    def interval_s(self) -> float:
        """The bucket width in seconds."""
        return self.interval.total_seconds()

    @property
    def period(self) -> int:
        """The daily season in buckets (for ``"seasonal"``), at most ``lookback``."""
        return max(1, min(int(self.lookback), round(_DAY_S / self.interval_s)))

    @property
    def devices(self) -> list[str]:
        """The meters the model forecasts, sorted."""
        return sorted(self.forecasters_)

    # -- training -----------------------------------------------------------------------

    def meters(self, store: Store) -> list[str]:
        """The store's devices that report :attr:`metric`."""
        series = store.series()
        ids, metrics = series.column("device_id").to_pylist(), series.column("metric").to_pylist()
        pairs = zip(ids, metrics, strict=True)
        return sorted({d for d, m in pairs if m == self.metric})

    def fit(
        self,
        store: Store,
        devices: Iterable[str] | None = None,
        start: datetime | int | None = None,
        end: datetime | int | None = None,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> dict[str, float]:
        """Fit one forecaster per meter on its history in ``[start, end)``; return metrics.

        ``devices=None`` takes every device reporting the metric. A meter whose history is
        too short or broken by a long gap is skipped, its reason kept in :attr:`skipped_`;
        when no meter is left, :class:`~iotml.errors.InvalidData` lists the reasons.
        """
        step = progress if callable(progress) else (lambda _text: None)
        chosen = self.meters(store) if devices is None else sorted(set(devices))
        if not chosen:
            raise InvalidData(f"no device in the store reports {self.metric!r}")
        fitted: dict[str, Forecaster] = {}
        skipped: dict[str, str] = {}
        errors: list[_HeldOut] = []
        spans: list[tuple[int, int]] = []
        for i, device in enumerate(chosen, 1):
            step(f"meter {i}/{len(chosen)}: {device}")
            try:
                series = load_series(store, device, self.metric, start, end,
                                     every=self.interval, max_gap=self.max_gap)  # fmt: skip
                forecaster = self._forecaster().fit(series.values, _stamps(series))
            except InvalidData as err:
                skipped[device] = str(err)
                continue
            fitted[device] = forecaster
            errors.append(_held_out(forecaster))
            spans.append((int(series.ts_us[0]), series.end_us))
        if not fitted:
            reasons = "; ".join(f"{d}: {why}" for d, why in skipped.items())
            raise InvalidData(f"no meter has a usable {self.metric!r} history: {reasons}")
        self.forecasters_, self.skipped_ = fitted, skipped
        self.span_ = (_iso(min(s for s, _ in spans)), _iso(max(e for _, e in spans)))
        self.metrics_ = _metrics(errors, self.levels, len(fitted), len(skipped))
        return dict(self.metrics_)

    def _forecaster(self) -> Forecaster:
        return Forecaster(self.model, self.lookback, self.horizon, self.levels, self.period)

    # -- forecasting --------------------------------------------------------------------

    def forecast(
        self, store: Store, device_id: str, now: datetime | int | None = None
    ) -> MeterForecast:
        """``device_id``'s forecast from its buckets completed by ``now`` (default: now).

        The first step is the bucket after the last complete one with data. Raises
        :class:`~iotml.errors.ConfigError` for a meter the model does not cover and
        :class:`~iotml.errors.InvalidData` when its recent history is too short, broken
        by a long gap, or stale (no reading in the last ``max_gap + 1`` buckets).
        """
        forecaster = self.forecaster(device_id)
        series = self.recent(store, device_id, now)
        out = forecaster.predict(history=series.values, timestamps=_stamps(series))
        width = int(self.interval / timedelta(microseconds=1))
        ts = series.end_us + np.arange(self.horizon, dtype=np.int64) * width
        return MeterForecast(
            device_id, self.metric, self.interval_s, ts, out.point[:, 0],
            {k: v[:, 0] for k, v in out.lower.items()},
            {k: v[:, 0] for k, v in out.upper.items()}, series.end_us,
        )  # fmt: skip

    def recent(self, store: Store, device_id: str, now: datetime | int | None = None) -> Series:
        """The last ``lookback`` buckets of ``device_id`` completed by ``now``, checked."""
        width = int(self.interval / timedelta(microseconds=1))
        end = (_now_us(now) // width) * width
        start = end - (self.lookback + self.max_gap + 1) * width
        series = load_series(store, device_id, self.metric, start, end,
                             every=self.interval, max_gap=self.max_gap)  # fmt: skip
        if not len(series) or series.end_us < end - self.max_gap * width:
            since = "never" if not len(series) else f"not since {_iso(series.end_us)}"
            raise InvalidData(
                f"{device_id}/{self.metric}: no recent reading ({since}); expected one in "
                f"the {self.max_gap + 1} buckets before {_iso(end)}"
            )
        if len(series) < self.lookback:
            raise InvalidData(
                f"{device_id}/{self.metric} has {len(series)} recent buckets; expected "
                f"lookback={self.lookback}"
            )
        return series

    def forecaster(self, device_id: str) -> Forecaster:
        """The fitted forecaster of ``device_id``; ConfigError for a meter not covered."""
        if not self.forecasters_:
            raise ConfigError("the model is not trained: call fit() or load() first")
        try:
            return self.forecasters_[device_id]
        except KeyError:
            known = self.devices
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise ConfigError(
                f"device {device_id!r} is not covered by forecast model {self.ref}; "
                f"expected one of {len(known)} meters: {shown}"
            ) from None

    # -- bundles ------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """What the model reads: the metric, its grid, lookback, horizon, levels, meters."""
        return {
            "metric": self.metric,
            "interval_s": self.interval_s,
            "lookback": self.lookback,
            "horizon": self.horizon,
            "model": self.model,
            "levels": list(self.levels),
            "max_gap": self.max_gap,
            "devices": self.devices,
            "training_span": list(self.span_ or ()),
        }

    def save(self, registry: ModelRegistry, name: str, version: str | int) -> Manifest:
        """Sign and store the trained model as ``name@version`` in ``registry``."""
        if not self.forecasters_:
            raise ConfigError("the model is not trained: call fit() before save()")
        manifest = registry.save(
            name,
            version,
            task=TASK,
            objects={_FILE: self.forecasters_},
            input_schema=self.input_schema(),
            metrics=self.metrics_,
            meta={"model": self.model, "skipped": self.skipped_},
        )
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(
        cls, registry: ModelRegistry, name: str, version: str | int = "latest"
    ) -> ForecastModel:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        manifest, schema = bundle.manifest, bundle.manifest.input_schema
        forecasters = bundle.objects.get(_FILE)
        if (
            manifest.task != TASK
            or not isinstance(schema, dict)
            or not isinstance(forecasters, dict)
        ):
            raise BundleError(
                f"bundle {bundle.ref} is not a forecast model (task {manifest.task!r}); "
                f"expected task {TASK!r} with {_FILE}"
            )
        try:
            model = cls(
                schema["metric"], interval=timedelta(seconds=schema["interval_s"]),
                lookback=schema["lookback"], horizon=schema["horizon"], model=schema["model"],
                levels=schema["levels"], max_gap=schema["max_gap"],
            )  # fmt: skip
            span = schema.get("training_span") or None
            model.span_ = None if span is None else (str(span[0]), str(span[1]))
        except (KeyError, TypeError, IndexError, ConfigError) as err:
            raise BundleError(f"bundle {bundle.ref} has a malformed input schema: {err}") from err
        model.forecasters_ = dict(forecasters)
        model.skipped_ = dict((manifest.meta or {}).get("skipped", {}))
        model.metrics_ = dict(manifest.metrics)
        model.ref = bundle.ref
        return model


@dataclass(frozen=True)
class _HeldOut:
    """A meter's targets and forecasts (metric units) on its validation and calibration
    parts, and the calibration intervals per level."""

    val: tuple[Array, Array]
    calib: tuple[Array, Array]
    bands: dict[float, tuple[Array, Array]]


def _held_out(f: Forecaster) -> _HeldOut:
    """The fitted forecaster's validation and calibration forecasts, and the bands."""
    parts = f.held_out()
    predicted = parts["calibration"][1]
    bands = {level: f.interval(predicted, level) for level in f.levels}
    return _HeldOut(parts["validation"], parts["calibration"], bands)


def _stamps(series: Series) -> npt.NDArray[np.datetime64]:
    return series.ts_us.astype("datetime64[us]")


def _metrics(
    errors: list[_HeldOut], levels: tuple[float, ...], meters: int, skipped: int
) -> dict[str, float]:
    def pooled(parts: list[tuple[Array, Array]]) -> tuple[float, float]:
        diff = np.concatenate([(y - p).ravel() for y, p in parts])
        return float(np.mean(diff**2)), float(np.mean(np.abs(diff)))

    val_mse, val_mae = pooled([e.val for e in errors])
    cal_mse, cal_mae = pooled([e.calib for e in errors])
    out = {
        "meters": float(meters),
        "skipped": float(skipped),
        "val_mse": val_mse,
        "val_mae": val_mae,
        "calib_mse": cal_mse,
        "calib_mae": cal_mae,
        "calib_windows": float(sum(len(e.calib[0]) for e in errors)),
    }
    for level in levels:
        truth = np.concatenate([e.calib[0].ravel() for e in errors])
        low = np.concatenate([e.bands[level][0].ravel() for e in errors])
        high = np.concatenate([e.bands[level][1].ravel() for e in errors])
        out[f"coverage_{level:g}"] = coverage(truth, low, high)
    return out


def _now_us(now: datetime | int | None) -> int:
    if now is None:
        now = datetime.now(UTC)
    if isinstance(now, datetime):
        if now.utcoffset() is None:
            raise ConfigError(f"now={now!r} is a naive datetime; expected a timezone-aware one")
        return (now - _EPOCH) // timedelta(microseconds=1)
    if isinstance(now, int | np.integer) and not isinstance(now, bool):
        return int(now)
    raise ConfigError(f"now={now!r}; expected an aware datetime or epoch microseconds")


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")
