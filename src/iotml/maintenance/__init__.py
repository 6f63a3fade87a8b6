"""Predictive maintenance: failure risk and remaining useful life from machine telemetry.

* features — :func:`window_features` (level, spread, trend, min/max, last, rate of
  change per machine), :class:`ConditionNormalizer` (per operating condition),
  :func:`ai4i_features` and the physics helpers, :class:`RunFeatures` (the whole recipe);
* targets — :func:`piecewise_rul`, :func:`rul_from_history`, :func:`failure_within`;
* models — :class:`FailureClassifier` (tree or boosting, calibrated, tuned threshold),
  :class:`RULRegressor` (boosting, clipped to ``[0, cap]``);
* explanations — :func:`global_importance`, :func:`contributions`, :func:`explain`;
* protocols — :func:`evaluate_ai4i`, :func:`evaluate_cmapss`, :func:`rul_metrics`;
* plots — :func:`plot_rul`, :func:`plot_tree`, :func:`plot_risk`;
* from your store — :func:`read_maintenance_log`, :func:`telemetry_frame`,
  :func:`label_failure_within`, :func:`label_rul`, and :class:`MaintenanceModel` (the
  deployable unit: features + estimator, trained from the store, saved as a signed bundle).

pandas and matplotlib come from the ``ml`` extra.
"""

from __future__ import annotations

__all__ = [
    "CMAPSS_WINDOWS",
    "DEFAULT_CAP",
    "STRAIN_LIMITS",
    "TASKS",
    "ConditionNormalizer",
    "FailureClassifier",
    "LogProblem",
    "MaintenanceLog",
    "MaintenanceModel",
    "Prediction",
    "RULRegressor",
    "Reason",
    "RunFeatures",
    "ai4i_classifier",
    "ai4i_features",
    "classification_metrics",
    "contributions",
    "describe",
    "evaluate_ai4i",
    "evaluate_cmapss",
    "explain",
    "failure_within",
    "fit_cmapss",
    "global_importance",
    "label_failure_within",
    "label_rul",
    "last_rows",
    "phm08_score",
    "piecewise_rul",
    "plot_risk",
    "plot_rul",
    "plot_tree",
    "power",
    "predict_last",
    "read_maintenance_log",
    "rul_from_history",
    "rul_metrics",
    "strain",
    "telemetry_frame",
    "temperature_difference",
    "tree_contributions",
    "window_features",
]

from iotml.maintenance.conditions import ConditionNormalizer
from iotml.maintenance.design import CMAPSS_WINDOWS, RunFeatures
from iotml.maintenance.evaluate import (
    ai4i_classifier,
    classification_metrics,
    evaluate_ai4i,
    evaluate_cmapss,
    fit_cmapss,
    phm08_score,
    predict_last,
    rul_metrics,
)
from iotml.maintenance.explain import (
    Reason,
    contributions,
    describe,
    explain,
    global_importance,
    tree_contributions,
)
from iotml.maintenance.features import last_rows, window_features
from iotml.maintenance.labels import (
    LogProblem,
    MaintenanceLog,
    label_failure_within,
    label_rul,
    read_maintenance_log,
    telemetry_frame,
)
from iotml.maintenance.model import TASKS, MaintenanceModel, Prediction
from iotml.maintenance.models import FailureClassifier, RULRegressor
from iotml.maintenance.physics import (
    STRAIN_LIMITS,
    ai4i_features,
    power,
    strain,
    temperature_difference,
)
from iotml.maintenance.plots import plot_risk, plot_rul, plot_tree
from iotml.maintenance.targets import DEFAULT_CAP, failure_within, piecewise_rul, rul_from_history
