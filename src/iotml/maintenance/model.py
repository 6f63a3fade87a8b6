"""The deployable maintenance model: from the store and a repair log to a signed bundle.

A :class:`MaintenanceModel` is everything the live pipeline needs to score a machine:

* the **task** — ``"failure"`` (probability of a failure within ``horizon``) or ``"rul"``
  (remaining useful life in hours, trained on the piecewise-linear target capped at
  ``cap``);
* the **input schema** — which ``metrics``, resampled on a grid of width ``every``
  (:func:`~iotml.maintenance.labels.telemetry_frame`: the mean per bucket), gaps of up
  to ``max_gap`` buckets carried forward from the last reading;
* the **features** — :func:`~iotml.maintenance.features.window_features` per machine over
  the trailing time ``windows``, with trends and rates of change per hour;
* the **estimator** — :class:`~iotml.maintenance.models.FailureClassifier` (``model="tree"``
  or ``"boosting"``), for RUL :class:`~iotml.maintenance.models.RULRegressor` or a
  regression tree; or any scikit-learn estimator given as ``estimator``.

:meth:`MaintenanceModel.fit` labels each grid row with the log
(:func:`~iotml.maintenance.labels.label_failure_within` / ``label_rul``: rows during repair
and censored rows are left out) and reports cross-validated metrics with whole machines
held out. :meth:`MaintenanceModel.score` gives every machine's latest risk or RUL and the
features that moved it most, in words (:func:`~iotml.maintenance.explain.explain`).
:meth:`MaintenanceModel.save` writes a signed bundle whose manifest holds the task, the
input schema and the metrics; :meth:`MaintenanceModel.load` verifies and rebuilds it.

The store and the registry are passed in, never imported: this module is a learning
layer and does no I/O of its own.
"""

from __future__ import annotations

__all__ = ["TASKS", "MaintenanceModel", "Prediction"]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from iotml.errors import BundleError, ConfigError, require_extra
from iotml.maintenance._training import (
    check_training_set,
    cv_metrics,
    now_us,
    seconds,
    training_counts,
    window_text,
)
from iotml.maintenance.explain import explain
from iotml.maintenance.features import STATS, window_features
from iotml.maintenance.labels import label_failure_within, label_rul, telemetry_frame
from iotml.maintenance.models import FailureClassifier, RULRegressor

if TYPE_CHECKING:
    import pandas as pd

    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest
    from iotml.store.base import Store

TASKS = {"failure": "failure_risk", "rul": "rul"}
"""Model task → the bundle's task name (also the kind of the events it produces)."""

_HOUR_S = 3600.0
_BACKGROUND = 256  # training rows kept to say what "typical" is in explanations
_ESTIMATOR_FILE = "estimator.joblib"
_BACKGROUND_FILE = "background.joblib"


@dataclass(frozen=True, slots=True)
class Prediction:
    """One machine's latest score: ``value`` is the failure probability (task
    ``"failure"``) or the remaining useful life in hours (task ``"rul"``), computed from
    the features of the grid bucket starting at ``ts``; ``reasons`` say, in words, what
    moved it most, ``features`` name those inputs."""

    device_id: str
    ts: datetime
    value: float
    reasons: tuple[str, ...]
    features: tuple[str, ...]


class MaintenanceModel:
    """Failure risk or remaining useful life per machine, from telemetry in a store.

    Parameters
    ----------
    metrics
        The input metrics (every machine scored must report all of them).
    task
        ``"failure"`` (classification: a failure within ``horizon``) or ``"rul"``.
    every
        Width of the resampling grid (one feature row per machine and bucket).
    windows
        Trailing feature windows, ``timedelta`` or pandas offsets (``"30min"``).
    horizon
        Task ``"failure"``: how far ahead a failure counts.
    cap
        Task ``"rul"``: cap of the piecewise-linear target (``None``: uncapped).
    model
        ``"tree"`` (interpretable) or ``"boosting"``; ignored when ``estimator`` is given.
    estimator
        Any scikit-learn classifier (with ``predict_proba``) or regressor, used unfitted.
    stats, max_gap
        Window statistics, and how many empty buckets are filled with the last reading.
    cv
        Folds (whole machines held out) for the training metrics; 0 skips them.
    random_state
        Seed of the estimator and of the background sample.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        task: str = "failure",
        every: timedelta = timedelta(minutes=1),
        windows: Sequence[str | timedelta] = ("15min", "1h"),
        horizon: timedelta | None = timedelta(hours=24),
        cap: timedelta | None = None,
        model: str = "tree",
        estimator: Any = None,
        stats: Sequence[str] = STATS,
        max_gap: int = 5,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"task={task!r} is not one of {sorted(TASKS)}")
        if isinstance(metrics, str) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise ConfigError(f"metrics={metrics!r} must be one or more metric names")
        if model not in ("tree", "boosting"):
            raise ConfigError(f"model={model!r} is not 'tree' or 'boosting'")
        if not isinstance(max_gap, int) or max_gap < 0 or not isinstance(cv, int) or cv < 0:
            raise ConfigError(f"max_gap={max_gap!r} and cv={cv!r} must be integers >= 0")
        if task == "failure" and horizon is None:
            raise ConfigError("task='failure' needs a horizon (a positive timedelta)")
        self.task = task
        self.metrics = list(metrics)
        self.every_s = seconds(every, "every")
        self.windows = [window_text(w) for w in windows]
        if not self.windows:
            raise ConfigError("windows must name at least one window, e.g. ['30min']")
        self.horizon_s = seconds(horizon, "horizon") if task == "failure" else None
        self.cap_s = seconds(cap, "cap") if task == "rul" else None
        self.model = model
        self.stats = list(stats)
        self.max_gap = max_gap
        self.cv = cv
        self.random_state = random_state
        self.estimator = estimator if estimator is not None else self._default_estimator()
        self.feature_names: list[str] = []
        self.background: npt.NDArray[np.float64] | None = None
        self.metrics_: dict[str, float] = {}
        self.ref = "maintenance@unsaved"

    # -- the pieces ---------------------------------------------------------------------

    @property
    def every(self) -> timedelta:
        """The grid width."""
        assert self.every_s is not None
        return timedelta(seconds=self.every_s)

    @property
    def lookback(self) -> timedelta:
        """How much history one score needs: twice the longest window and a gap."""
        pandas = require_extra("pandas", "ml")
        longest: timedelta = max(pandas.Timedelta(w).to_pytimedelta() for w in self.windows)
        return 2 * longest + self.every * (self.max_gap + 2)

    def _default_estimator(self) -> Any:
        if self.task == "failure":
            return FailureClassifier(self.model, random_state=self.random_state)
        cap_h = None if self.cap_s is None else self.cap_s / _HOUR_S
        if self.model == "boosting":
            return RULRegressor(cap=cap_h, random_state=self.random_state)
        from sklearn.tree import DecisionTreeRegressor

        return DecisionTreeRegressor(
            max_depth=8, min_samples_leaf=20, random_state=self.random_state
        )

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``device_id``, ``ts`` and the feature columns of a :func:`telemetry_frame`.

        Rows whose features are incomplete (in a gap longer than ``max_gap`` buckets) or
        rest on less than the longest window of history are dropped.
        """
        frame = frame.sort_values(["device_id", "ts"], kind="stable").reset_index(drop=True)
        filled = frame.groupby("device_id", sort=False)[self.metrics].ffill(limit=self.max_gap)
        frame[self.metrics] = filled
        feats = window_features(
            frame, self.metrics, self.windows, group="device_id", order="ts", stats=self.stats
        )
        rates = [c for c in feats.columns if "_slope_" in c or c.endswith("_roc")]
        feats[rates] = feats[rates] * _HOUR_S  # per second → per hour, as people read trends
        complete = frame[self.metrics].notna().all(axis=1) & feats.notna().all(axis=1)
        complete &= self._warm(frame, complete)
        out = frame.loc[complete, ["device_id", "ts"]].join(feats.loc[complete])
        return out.reset_index(drop=True)

    def _warm(self, frame: pd.DataFrame, complete: pd.Series[bool]) -> pd.Series[bool]:
        """Rows at least one longest window after their machine's first complete row: a
        window with less history has other statistics than those the model learned from."""
        pandas = require_extra("pandas", "ml")
        longest = max(pandas.Timedelta(w) for w in self.windows) - pandas.Timedelta(self.every)
        first = frame["ts"].where(complete).groupby(frame["device_id"]).transform("min")
        warm: pd.Series[bool] = (frame["ts"] - first) >= longest
        return warm

    def _labelled(
        self, feats: pd.DataFrame, failures: pd.DataFrame, end: datetime | None
    ) -> tuple[pd.DataFrame, str]:
        until = end if isinstance(end, datetime) else None
        if self.task == "failure":
            assert self.horizon_s is not None
            horizon = timedelta(seconds=self.horizon_s)
            return label_failure_within(feats, failures, horizon, observed_until=until), "label"
        cap = None if self.cap_s is None else timedelta(seconds=self.cap_s)
        return label_rul(feats, failures, cap=cap, observed_until=until), "rul"

    # -- training -----------------------------------------------------------------------

    def fit(
        self,
        store: Store,
        log: Any,
        devices: Iterable[str] | None = None,
        start: datetime | int | None = None,
        end: datetime | int | None = None,
        *,
        progress: Any = None,
    ) -> dict[str, float]:
        """Train on the store's telemetry labelled by ``log``; return the training metrics.

        ``log`` is a :class:`~iotml.maintenance.labels.MaintenanceLog` or its ``failures``
        frame. ``progress``, when given, is called with a short text before each step.
        """
        step = progress if callable(progress) else (lambda _text: None)
        failures = getattr(log, "failures", log)
        step("reading telemetry")
        frame = telemetry_frame(store, devices, self.metrics, start, end, self.every)
        step("computing window features")
        feats = self.features(frame)
        labelled, target = self._labelled(
            feats, failures, end if isinstance(end, datetime) else None
        )
        names = [c for c in feats.columns if c not in ("device_id", "ts")]
        inputs = labelled[names]
        y = labelled[target].to_numpy()
        check_training_set(self.task, y)
        groups = labelled["device_id"].to_numpy()
        step(f"cross-validating on {len(y)} rows")
        metrics = (
            cv_metrics(self.task, self.estimator, inputs, y, groups, self.cv)
            if self.cv >= 2
            else {}
        )
        step(f"fitting {type(self.estimator).__name__}")
        self.estimator.fit(inputs, y)
        self.feature_names = names
        rng = np.random.default_rng(self.random_state)
        keep = rng.choice(len(inputs), size=min(_BACKGROUND, len(inputs)), replace=False)
        self.background = inputs.to_numpy(dtype=np.float64)[np.sort(keep)]
        self.metrics_ = {**training_counts(self.task, y, labelled, failures), **metrics}
        return dict(self.metrics_)

    # -- scoring ------------------------------------------------------------------------

    def devices(self, store: Store) -> list[str]:
        """The store's devices that report every input metric (the machines it applies to)."""
        series = store.series()
        have: dict[str, set[str]] = {}
        for device, metric in zip(
            series.column("device_id").to_pylist(), series.column("metric").to_pylist(), strict=True
        ):
            have.setdefault(device, set()).add(metric)
        return sorted(d for d, m in have.items() if m.issuperset(self.metrics))

    def score(
        self,
        store: Store,
        devices: Iterable[str] | None = None,
        now: datetime | int | None = None,
        *,
        top: int = 3,
    ) -> list[Prediction]:
        """Each machine's latest risk (or RUL, hours) from readings up to ``now`` included.

        ``devices=None`` scores every device with all input metrics; ``now=None`` is the
        current time. A machine with no reading in the last ``max_gap`` buckets before
        ``now`` is not scored (it is silent, not healthy).
        """
        if not self.feature_names:
            raise ConfigError("the model is not trained: call fit() or load() first")
        at_us = now_us(now)
        chosen = self.devices(store) if devices is None else list(devices)
        if not chosen:
            return []
        lookback_us = int(self.lookback.total_seconds() * 1e6)
        frame = telemetry_frame(
            store, chosen, self.metrics, at_us - lookback_us, at_us + 1, self.every
        )
        feats = self.features(frame)
        latest = feats.groupby("device_id", sort=True).tail(1)
        silent_us = int(self.every_s or 0) * 10**6 * (self.max_gap + 1)
        latest = latest.loc[latest["ts"] >= _ts(at_us - silent_us)].reset_index(drop=True)
        if latest.empty:
            return []
        inputs = latest[self.feature_names]
        values = self._predict(inputs)
        reasons = explain(self.estimator, inputs, self.background, top=top, unit="h")
        return [
            Prediction(
                str(device),
                ts.to_pydatetime(),
                float(v),
                tuple(r.text for r in why),
                tuple(r.feature for r in why),
            )
            for device, ts, v, why in zip(
                latest["device_id"], latest["ts"], values, reasons, strict=True
            )
        ]

    def history(
        self,
        store: Store,
        devices: Iterable[str] | None = None,
        start: datetime | int | None = None,
        end: datetime | int | None = None,
    ) -> pd.DataFrame:
        """``device_id``, ``ts`` and ``value`` (risk or RUL) at every grid bucket of the
        range: what the live stage would have said over time (for plots and reviews)."""
        if not self.feature_names:
            raise ConfigError("the model is not trained: call fit() or load() first")
        chosen = self.devices(store) if devices is None else list(devices)
        frame = telemetry_frame(store, chosen, self.metrics, start, end, self.every)
        feats = self.features(frame)
        out = feats[["device_id", "ts"]].copy()
        out["value"] = self._predict(feats[self.feature_names]) if len(feats) else []
        return out

    def _predict(self, inputs: pd.DataFrame) -> npt.NDArray[np.float64]:
        if self.task == "failure":
            return np.asarray(self.estimator.predict_proba(inputs)[:, -1], dtype=np.float64)
        return np.asarray(self.estimator.predict(inputs), dtype=np.float64)

    # -- bundles ------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """What the model reads: metrics, grid, windows, horizon or cap, feature names."""
        return {
            "metrics": self.metrics,
            "every_s": self.every_s,
            "windows": self.windows,
            "stats": self.stats,
            "max_gap": self.max_gap,
            "horizon_s": self.horizon_s,
            "cap_s": self.cap_s,
            "rul_unit": "h",
            "features": self.feature_names,
        }

    def save(self, registry: ModelRegistry, name: str, version: str | int) -> Manifest:
        """Sign and store the trained model as ``name@version`` in ``registry``."""
        if not self.feature_names or self.background is None:
            raise ConfigError("the model is not trained: call fit() before save()")
        manifest = registry.save(
            name,
            version,
            task=TASKS[self.task],
            objects={_ESTIMATOR_FILE: self.estimator, _BACKGROUND_FILE: self.background},
            input_schema=self.input_schema(),
            metrics=self.metrics_,
            meta={"task": self.task, "model": self.model, "cv": self.cv},
        )
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(
        cls, registry: ModelRegistry, name: str, version: str | int = "latest"
    ) -> MaintenanceModel:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        manifest = bundle.manifest
        task = next((t for t, kind in TASKS.items() if kind == manifest.task), None)
        schema = manifest.input_schema
        if task is None or not isinstance(schema, dict) or _ESTIMATOR_FILE not in bundle.objects:
            raise BundleError(
                f"bundle {bundle.ref} is not a maintenance model (task {manifest.task!r}); "
                f"expected task one of {sorted(TASKS.values())}"
            )
        try:
            model = cls._from_schema(task, schema, manifest.meta, bundle.objects)
        except (KeyError, TypeError, ConfigError) as err:
            raise BundleError(f"bundle {bundle.ref} has a malformed input schema: {err}") from err
        model.metrics_ = dict(manifest.metrics)
        model.ref = bundle.ref
        return model

    @classmethod
    def _from_schema(
        cls, task: str, schema: dict[str, Any], meta: Any, objects: Any
    ) -> MaintenanceModel:
        def span(key: str) -> timedelta | None:
            return None if schema.get(key) is None else timedelta(seconds=schema[key])

        model = cls(
            schema["metrics"],
            task=task,
            every=timedelta(seconds=schema["every_s"]),
            windows=schema["windows"],
            horizon=span("horizon_s"),
            cap=span("cap_s"),
            model=(meta or {}).get("model", "tree"),
            estimator=objects[_ESTIMATOR_FILE],
            stats=schema["stats"],
            max_gap=schema["max_gap"],
            cv=(meta or {}).get("cv", 0),
        )
        model.feature_names = list(schema["features"])
        model.background = np.asarray(objects[_BACKGROUND_FILE], dtype=np.float64)
        return model


def _ts(us: int) -> Any:
    pandas = require_extra("pandas", "ml")
    return pandas.Timestamp(us, unit="us", tz="UTC")
