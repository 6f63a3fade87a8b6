"""The NSL-KDD reader and its feature matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.datasets import NSL_KDD_COLUMNS, nsl_kdd_matrix, read_nsl_kdd
from iotml.errors import InvalidData


def _line(protocol: str, service: str, flag: str, label: str, src_bytes: int = 100) -> str:
    values = ["0"] * len(NSL_KDD_COLUMNS)
    values[NSL_KDD_COLUMNS.index("protocol_type")] = protocol
    values[NSL_KDD_COLUMNS.index("service")] = service
    values[NSL_KDD_COLUMNS.index("flag")] = flag
    values[NSL_KDD_COLUMNS.index("src_bytes")] = str(src_bytes)
    return ",".join([*values, label, "20"]) + "\n"


def test_read_and_encode_with_the_training_categories(tmp_path: Path) -> None:
    train = tmp_path / "train.txt"
    train.write_text(_line("tcp", "http", "SF", "normal") + _line("udp", "dns", "S0", "neptune"))
    test = tmp_path / "test.txt"
    test.write_text(_line("icmp", "ecr_i", "SF", "smurf", src_bytes=0))
    a, b = read_nsl_kdd(train), read_nsl_kdd(test)
    assert a.is_attack.tolist() == [False, True]
    assert a.numeric.shape == (2, 38)
    m_train, m_test = nsl_kdd_matrix(a), nsl_kdd_matrix(b, reference=a)
    assert m_train.shape[1] == m_test.shape[1] == 38 + 2 + 2 + 2
    assert m_train[0, a.numeric_names.index("src_bytes")] == pytest.approx(np.log1p(100))
    # categories the training file never saw set no column; SF was seen
    assert m_test[0, 38:42].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert m_test[0, 42:].sum() == 1.0


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(_line("tcp", "http", "SF", "normal") + "1,2,3\n")
    with pytest.raises(InvalidData, match=r"bad.txt:2: 3 fields"):
        read_nsl_kdd(bad)
    word = tmp_path / "word.txt"
    word.write_text(_line("tcp", "http", "SF", "normal").replace("100", "many"))
    with pytest.raises(InvalidData, match=r"word.txt:1"):
        read_nsl_kdd(word)
    with pytest.raises(InvalidData, match="cannot read"):
        read_nsl_kdd(tmp_path / "missing.txt")
