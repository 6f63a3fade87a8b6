"""Plots are written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.errors import ConfigError
from iotml.maintenance import FailureClassifier, plot_risk, plot_rul, plot_tree

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs(tmp_path: Path) -> None:
    rul = plot_rul([10, 50, 120], [12, 40, 125], tmp_path / "rul.png")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    clf = FailureClassifier(max_depth=2).fit(x, (x[:, 0] > 1).astype(int))
    tree = plot_tree(clf, tmp_path / "tree.png", ["power", "wear"])
    risk = plot_risk(
        {"m1": (np.arange(5), [0.1, 0.2, 0.5, 0.7, 0.9]), "m2": (np.arange(5), [0.1] * 5)},
        tmp_path / "sub" / "risk.png",
        threshold=0.6,
    )
    for path in (rul, tree, risk):
        assert path.read_bytes()[:8] == PNG


def test_plot_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="same"):
        plot_rul([1, 2], [1], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="at least one"):
        plot_risk({}, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="decision tree"):
        plot_tree(object(), tmp_path / "x.png")
