"""Loaders for public benchmark file formats, by path (AI4I, C-MAPSS, ETT, household power).

Every loader takes any file of its format, not only the copies in ``../shared/data``;
malformed content raises :class:`iotml.errors.InvalidData` naming the file, the line and
the problem. pandas comes from the ``ml`` extra.
"""

from __future__ import annotations

__all__ = [
    "AI4I_FEATURES",
    "AI4I_LEAKING",
    "AI4I_MODES",
    "AI4I_TARGET",
    "CMAPSS_COLUMNS",
    "HOUSEHOLD_TARGET",
    "NSLKDD",
    "NSL_KDD_CATEGORICAL",
    "NSL_KDD_COLUMNS",
    "AI4IData",
    "CMAPSSData",
    "ETTData",
    "Split",
    "ett_split",
    "household_split",
    "load_cmapss",
    "nsl_kdd_matrix",
    "read_ai4i",
    "read_cmapss",
    "read_ett",
    "read_household",
    "read_nsl_kdd",
    "read_rul",
    "read_timeseries",
]

from iotml.datasets.ai4i import (
    AI4I_FEATURES,
    AI4I_LEAKING,
    AI4I_MODES,
    AI4I_TARGET,
    AI4IData,
    read_ai4i,
)
from iotml.datasets.cmapss import CMAPSS_COLUMNS, CMAPSSData, load_cmapss, read_cmapss, read_rul
from iotml.datasets.ett import ETTData, Split, ett_split, read_ett, read_timeseries
from iotml.datasets.household import HOUSEHOLD_TARGET, household_split, read_household
from iotml.datasets.nslkdd import (
    NSL_KDD_CATEGORICAL,
    NSL_KDD_COLUMNS,
    NSLKDD,
    nsl_kdd_matrix,
    read_nsl_kdd,
)
