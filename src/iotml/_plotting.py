"""What every plotting module shares: matplotlib on the Agg backend, and saving a figure.

matplotlib comes from the ``ml`` extra and is imported only when a plot is drawn.
"""

from __future__ import annotations

__all__ = ["pyplot", "save_figure"]

from pathlib import Path
from typing import Any

from iotml.errors import require_extra


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend (no display needed)."""
    matplotlib = require_extra("matplotlib", "ml")
    matplotlib.use("Agg")
    return require_extra("matplotlib.pyplot", "ml")


def save_figure(fig: Any, plt: Any, path: str | Path) -> Path:
    """Lay out ``fig``, write it as a PNG at ``path`` (folders made), close it; the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
