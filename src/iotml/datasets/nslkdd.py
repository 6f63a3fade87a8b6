"""NSL-KDD (``KDDTrain+*.txt``, ``KDDTest+.txt``): connection records with attack labels.

Each line holds the 41 features of the KDD'99 set, the label (``normal`` or an attack
name) and a difficulty score. :func:`read_nsl_kdd` returns the raw columns;
:func:`nsl_kdd_matrix` turns them into a numeric matrix: the 38 numeric features (counts
and byte totals log-scaled) and one-hots of ``protocol_type``, ``service`` and ``flag``
with the categories of a reference (training) file, so train and test share columns; a
category the reference never saw sets no column.

Malformed lines (wrong field count, a number that is not one) raise
:class:`~iotml.errors.InvalidData` naming the file and the line.
"""

from __future__ import annotations

__all__ = ["NSLKDD", "NSL_KDD_CATEGORICAL", "NSL_KDD_COLUMNS", "nsl_kdd_matrix", "read_nsl_kdd"]

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData

#: The 41 feature names, in file order.
NSL_KDD_COLUMNS = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
#: The three symbolic features, one-hot encoded by :func:`nsl_kdd_matrix`.
NSL_KDD_CATEGORICAL = ("protocol_type", "service", "flag")
_LOGGED = ("duration", "src_bytes", "dst_bytes", "count", "srv_count", "dst_host_count",
           "dst_host_srv_count")  # fmt: skip


@dataclass(frozen=True)
class NSLKDD:
    """One NSL-KDD file: numeric features, symbolic features, labels and difficulty."""

    numeric: npt.NDArray[np.float64]  # (rows, 38)
    numeric_names: tuple[str, ...]
    symbolic: dict[str, list[str]]  # protocol_type, service, flag
    label: list[str]  # "normal" or the attack's name
    difficulty: npt.NDArray[np.int64]

    @property
    def is_attack(self) -> npt.NDArray[np.bool_]:
        """True for every record that is not ``normal``."""
        return np.array([name != "normal" for name in self.label])


def read_nsl_kdd(path: str | Path) -> NSLKDD:
    """Read an NSL-KDD text file (41 features, label, difficulty per line)."""
    source = Path(path)
    numeric_names = tuple(c for c in NSL_KDD_COLUMNS if c not in NSL_KDD_CATEGORICAL)
    positions = [NSL_KDD_COLUMNS.index(c) for c in numeric_names]
    rows: list[list[float]] = []
    symbolic: dict[str, list[str]] = {c: [] for c in NSL_KDD_CATEGORICAL}
    labels: list[str] = []
    difficulty: list[int] = []
    try:
        with source.open(newline="") as handle:
            for number, fields in enumerate(csv.reader(handle), 1):
                if not fields:
                    continue
                if len(fields) != len(NSL_KDD_COLUMNS) + 2:
                    raise InvalidData(
                        f"{source}:{number}: {len(fields)} fields; expected "
                        f"{len(NSL_KDD_COLUMNS) + 2} (41 features, label, difficulty)"
                    )
                try:
                    rows.append([float(fields[i]) for i in positions])
                    difficulty.append(int(fields[-1]))
                except ValueError as err:
                    raise InvalidData(f"{source}:{number}: {err}") from err
                for c in NSL_KDD_CATEGORICAL:
                    symbolic[c].append(fields[NSL_KDD_COLUMNS.index(c)])
                labels.append(fields[-2])
    except OSError as err:
        raise InvalidData(f"cannot read {source}: {err.strerror or err}") from err
    if not rows:
        raise InvalidData(f"{source} holds no records")
    return NSLKDD(np.array(rows), numeric_names, symbolic, labels, np.array(difficulty))


def nsl_kdd_matrix(data: NSLKDD, reference: NSLKDD | None = None) -> npt.NDArray[np.float64]:
    """Numeric matrix: log-scaled counts, the other numbers, and the reference's one-hots.

    ``reference`` (default: ``data`` itself) fixes the categories, so a test file gets the
    training file's columns.
    """
    numeric = data.numeric.copy()
    for name in _LOGGED:
        j = data.numeric_names.index(name)
        numeric[:, j] = np.log1p(np.maximum(numeric[:, j], 0.0))
    ref = reference or data
    blocks = [numeric]
    for c in NSL_KDD_CATEGORICAL:
        categories = sorted(set(ref.symbolic[c]))
        index = {v: i for i, v in enumerate(categories)}
        onehot = np.zeros((len(data.label), len(categories)))
        for row, value in enumerate(data.symbolic[c]):
            if value in index:
                onehot[row, index[value]] = 1.0
        blocks.append(onehot)
    return np.hstack(blocks)
