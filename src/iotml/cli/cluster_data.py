"""What ``iotml cluster`` reads: tracks or meter days from files named on the command line.

Three formats, one option each: go_track GPS tracks (a tracks CSV and a trackpoints CSV),
ETH/UCY ``frame id x y`` files (a file or a folder) and the household-power CSV (one
channel, one load shape per day). Rows that cannot be read are reported as
``file:line: reason`` — the count per file and the first few — and skipped, never fatal.
"""

from __future__ import annotations

__all__ = ["ClusterData", "Source", "read_source", "show_bad"]

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from iotml.cli.common import err_console
from iotml.clustering.tracks import BadRow
from iotml.errors import ConfigError

if TYPE_CHECKING:
    from iotml.clustering.profiles import DailyProfiles
    from iotml.clustering.tracks import Track

_SHOWN = 5  # malformed rows listed per file


@dataclass(frozen=True)
class Source:
    """The file(s) named by ``--go-track``, ``--eth-ucy`` or ``--household``: exactly one.

    >>> Source(eth_ucy=Path("eth.txt")).kind
    'tracks'
    >>> Source(eth_ucy=Path("eth.txt"), household=Path("power.csv"))
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: the data is given by --eth-ucy, --household; expected exactly one...
    """

    go_track: tuple[Path, Path] | None = None
    eth_ucy: Path | None = None
    household: Path | None = None
    channel: str = "Global_active_power"

    def __post_init__(self) -> None:
        given = [name for name, value in (("--go-track", self.go_track),
                 ("--eth-ucy", self.eth_ucy), ("--household", self.household))
                 if value is not None]  # fmt: skip
        if len(given) != 1:
            raise ConfigError(
                f"the data is given by {', '.join(given) or 'no option'}; "
                "expected exactly one of --go-track, --eth-ucy or --household"
            )

    @property
    def kind(self) -> str:
        """``"tracks"`` or ``"profiles"`` (meter days), as :class:`ClusterModel` names them."""
        return "profiles" if self.household is not None else "tracks"

    @property
    def option(self) -> str:
        """The option that named the data."""
        return "--household" if self.household else "--go-track" if self.go_track else "--eth-ucy"

    def __str__(self) -> str:
        if self.go_track is not None:
            return f"{self.go_track[0]} and {self.go_track[1]}"
        return str(self.eth_ucy if self.household is None else self.household)


@dataclass(frozen=True)
class ClusterData:
    """What was read: tracks or meter days, and the malformed rows reported on the way."""

    rows: list[Track] | DailyProfiles
    bad: list[BadRow]

    def describe(self) -> str:
        """How many tracks or days, in words."""
        if isinstance(self.rows, list):
            return f"{len(self.rows)} tracks"
        return f"{len(self.rows.days)} days"


def read_source(source: Source, max_missing: int = 2) -> ClusterData:
    """Read the tracks or the days (at most ``max_missing`` hours lacking) and show bad rows."""
    from iotml.clustering.profiles import household_day_profiles
    from iotml.clustering.tracks import read_eth_ucy, read_go_track

    if source.household is not None:
        days = household_day_profiles(source.household, source.channel, max_missing=max_missing)
        show_bad(list(days.bad))
        return ClusterData(days, list(days.bad))
    if source.go_track is not None:
        found = read_go_track(*source.go_track)
    else:
        assert source.eth_ucy is not None  # Source holds exactly one
        found = read_eth_ucy(source.eth_ucy)
    show_bad(found.bad)
    return ClusterData(found.tracks, found.bad)


def show_bad(bad: list[BadRow]) -> None:
    """Per file, the count of malformed rows, then the first few as ``file:line: reason``."""
    for path, count in Counter(b.path for b in bad).items():
        err_console.print(f"[yellow]{escape(path)}: {count} malformed rows[/]")
        for row in [b for b in bad if b.path == path][:_SHOWN]:
            err_console.print(f"  {escape(str(row))}")
