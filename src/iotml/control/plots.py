"""Pictures of a thermostat evaluation: a test week per controller, and the trade-off.

:func:`plot_week` stacks one panel per controller — zone temperature, its setpoint and
the comfort band in force — above a panel of the price and the outdoor temperature, all
over the same week. :func:`plot_tradeoff` puts every controller's energy cost against its
discomfort, one small marker per episode (week) and a large one for the mean, so the cost of
comfort is read at a glance. Both take an :class:`~iotml.control.thermostat_eval.Evaluation`
and write a PNG (matplotlib, the ``ml`` extra).
"""

from __future__ import annotations

__all__ = ["plot_tradeoff", "plot_week"]

from pathlib import Path
from typing import Any

import numpy as np

from iotml._plotting import pyplot, save_figure
from iotml.control.thermostat_eval import Evaluation
from iotml.errors import ConfigError


def plot_week(evaluation: Evaluation, path: str | Path, week: int = 0) -> Path:
    """Temperature, setpoint and comfort band per controller, then price, over one week."""
    if not 0 <= week < len(evaluation.scenarios):
        raise ConfigError(f"week is {week!r}; expected 0 to {len(evaluation.scenarios) - 1}")
    plt = pyplot()
    scenario = evaluation.scenarios[week]
    hours = np.arange(1, scenario.steps + 1) / scenario.steps_per_hour  # ends of the steps
    names = evaluation.names
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 2.2 * (len(names) + 1)), sharex=True)
    for ax, name in zip(axes, names, strict=False):
        episode = evaluation.episodes[name][week]
        ax.fill_between(hours, scenario.comfort_low, scenario.comfort_high, step="pre",
                        color="tab:green", alpha=0.12, label="comfort band")  # fmt: skip
        for zone in range(episode.t_in.shape[1]):
            ax.plot(hours, episode.t_in[:, zone], lw=1.0, label=f"zone {zone} temperature")
        for zone in range(episode.setpoint.shape[1]):
            if not np.all(np.isnan(episode.setpoint[:, zone])):
                ax.step(hours, episode.setpoint[:, zone], where="pre", lw=0.8, ls="--",
                        color=f"C{zone}", alpha=0.8, label=f"zone {zone} setpoint")  # fmt: skip
        k = episode.kpis
        ax.set_title(f"{name}: {k.energy_kwh:.0f} kWh, cost {k.cost:.2f}, "
                     f"discomfort {k.discomfort_kh:.2f} K·h", fontsize=9)  # fmt: skip
        ax.set_ylabel("°C")
        ax.set_ylim(12, 27)
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    _price_panel(axes[-1], hours, scenario)
    axes[-1].set_xlabel(f"hours from {scenario.start}")
    return save_figure(fig, plt, path)


def _price_panel(ax: Any, hours: Any, scenario: Any) -> None:
    ax.step(hours, scenario.price, where="pre", color="tab:red", label="price per kWh")
    ax.set_ylabel("price per kWh", color="tab:red")
    twin = ax.twinx()
    twin.plot(hours, scenario.t_out, color="tab:blue", lw=0.8, label="outdoor")
    twin.set_ylabel("outdoor °C", color="tab:blue")
    ax.set_title("time-of-use price and outdoor temperature", fontsize=9)


def plot_tradeoff(evaluation: Evaluation, path: str | Path) -> Path:
    """Energy cost against discomfort: a dot per controller and week, a large mean marker."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, name in enumerate(evaluation.names):
        color = f"C{i}"
        kpis = [ep.kpis for ep in evaluation.episodes[name]]
        ax.scatter([k.cost for k in kpis], [k.discomfort_kh for k in kpis], s=18,
                   color=color, alpha=0.5)  # fmt: skip
        mean = evaluation.mean(name)
        ax.scatter([mean.cost], [mean.discomfort_kh], s=120, color=color, marker="D",
                   edgecolor="black", label=f"{name} (mean)")  # fmt: skip
    ax.set_xlabel("energy cost per episode")
    ax.set_ylabel("discomfort per episode (K·h)")
    ax.set_title("cost against discomfort: dots are episodes, diamonds the means")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, plt, path)
