"""Forecast pictures: one window's forecast against the truth with its interval band, and
the error of each method by lead time.

Every function writes a PNG with matplotlib's non-interactive Agg backend (no display
needed) and returns the path. matplotlib comes from the ``ml`` extra.
"""

from __future__ import annotations

__all__ = ["plot_forecast", "plot_lead_time_errors"]

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from iotml._plotting import pyplot, save_figure
from iotml.errors import ConfigError

_BAND_ALPHA = (0.18, 0.32)  # lighter for the wider band, drawn first


def plot_forecast(
    history: tuple[npt.ArrayLike, npt.ArrayLike],
    actual: tuple[npt.ArrayLike, npt.ArrayLike],
    forecasts: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    bands: Mapping[float, tuple[npt.ArrayLike, npt.ArrayLike]] | None = None,
    band_of: str = "",
    title: str = "Forecast against actual",
    ylabel: str = "value",
) -> Path:
    """The lookback, the actual future and each method's forecast over it, with bands.

    Parameters
    ----------
    history, actual
        ``(times, values)`` of the lookback window and of the forecast horizon.
    forecasts
        ``{method: values}``, each as long as ``actual``.
    bands
        ``{level: (lower, upper)}`` intervals around the forecast of ``band_of``.

    >>> import tempfile
    >>> out = plot_forecast(([0, 1], [1.0, 2.0]), ([2, 3], [2.5, 3.0]), {"ridge": [2.2, 2.4]},
    ...                     Path(tempfile.mkdtemp()) / "f.png", bands={0.8: ([2, 2], [3, 3])})
    >>> out.stat().st_size > 0
    True
    """
    future_t, truth = np.asarray(actual[0]), np.asarray(actual[1], dtype=float)
    for name, values in forecasts.items():
        if np.shape(values) != truth.shape:
            raise ConfigError(
                f"forecast {name!r} has shape {np.shape(values)}; expected {truth.shape}"
            )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(
        np.asarray(history[0]), np.asarray(history[1], dtype=float), "k-", lw=1, label="history"
    )
    levels = sorted((bands or {}).items(), key=lambda item: -item[0])
    for (level, (lower, upper)), alpha in zip(levels, _BAND_ALPHA * len(levels), strict=False):
        ax.fill_between(
            future_t, np.asarray(lower, dtype=float), np.asarray(upper, dtype=float),
            color="tab:blue", alpha=alpha, lw=0, label=f"{band_of} {level:.0%} interval".strip(),
        )  # fmt: skip
    ax.plot(future_t, truth, "k-", lw=1.8, label="actual")
    for name, values in forecasts.items():
        ax.plot(future_t, np.asarray(values, dtype=float), lw=1.2, label=name)
    ax.axvline(future_t[0], color="grey", ls=":", lw=1)
    ax.set(xlabel="time", ylabel=ylabel, title=title)
    ax.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    return save_figure(fig, plt, path)


def plot_lead_time_errors(
    errors: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    step: str = "steps",
    metric: str = "MSE",
    title: str = "Error by lead time",
) -> Path:
    """One line per method: ``errors[method][k]`` is its error ``k + 1`` steps ahead.

    >>> import tempfile
    >>> out = plot_lead_time_errors({"ridge": [0.1, 0.2], "persistence": [0.3, 0.5]},
    ...                             Path(tempfile.mkdtemp()) / "e.png", step="h")
    >>> out.stat().st_size > 0
    True
    """
    if not errors:
        raise ConfigError("plot_lead_time_errors needs at least one method's errors")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, values in errors.items():
        curve = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, curve.size + 1), curve, lw=1.3, label=name)
    ax.set(xlabel=f"lead time [{step}]", ylabel=metric, title=title)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return save_figure(fig, plt, path)
