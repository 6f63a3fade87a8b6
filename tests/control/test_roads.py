"""Road graphs, the TNTP loader and the BPR function."""

from __future__ import annotations

from pathlib import Path

import networkx as nx  # type: ignore[import-untyped]
import numpy as np
import pytest

from iotml.control.roads import bpr, links_from_graph, read_tntp, synthetic_city
from iotml.errors import ConfigError, InvalidData

NET = """<NUMBER OF ZONES> 4
<NUMBER OF NODES> 4
<FIRST THRU NODE> 1
<NUMBER OF LINKS> 6
<ORIGINAL HEADER>~ Init node Term node Capacity Length Free Flow Time B Power Speed Toll Type ;
<END OF METADATA>


~ \tInit node \tTerm node \tCapacity \tLength \tFree Flow Time \tB\tPower\tSpeed \tToll \tType\t;
\t1\t2\t25900.2\t6\t6\t0.15\t4\t0\t0\t1\t;
\t2\t1\t25900.2\t6\t6\t0.15\t4\t0\t0\t1\t;
\t1\t3\t23403.5\t4\t4\t0.3\t2\t0\t0\t1\t;
\t3\t4\t17110.5\t4\t4\t0.15\t4\t0\t0\t1\t;
\t2\t4\tabc\t5\t5\t0.15\t4\t0\t0\t1\t;
\t4\t1\t0\t5\t5\t0.15\t4\t0\t0\t1\t;
\t4\t2\t4000\t3\t3\t;
\t1\t2\t999\t9\t9\t0.15\t4\t0\t0\t1\t;
\t3 ;
"""

TRIPS = """<NUMBER OF ZONES> 4
<TOTAL OD FLOW> 600.0
<END OF METADATA>


Origin  1
    2 :    100.0;     3 :    200.0;     4 :      0.0;
Origin  4
    1 :    300.0;     2 :    x;
"""

NODES = """Node\tX\tY\t;
1\t0.0\t0.0\t;
2\t1.0\t0.0\t;
3\tnope\t1.0\t;
"""


def test_bpr_formula() -> None:
    t = bpr(np.array([2.0, 2.0, 2.0]), np.array([0.0, 500.0, 1000.0]), 1000.0)
    np.testing.assert_allclose(t, [2.0, 2.0 * (1 + 0.15 * 0.5**4), 2.0 * 1.15])
    assert float(bpr(1.0, 2.0, 1.0, b=0.3, power=2.0)) == pytest.approx(1.0 + 0.3 * 4.0)


def test_bpr_refuses_non_positive_capacity() -> None:
    with pytest.raises(InvalidData, match="capacity"):
        bpr(1.0, 1.0, np.array([1.0, 0.0]))


def test_synthetic_city_is_seeded_and_strongly_connected() -> None:
    a, b = synthetic_city(6, 5, seed=3), synthetic_city(6, 5, seed=3)
    assert nx.is_strongly_connected(a)
    assert sorted(a.edges(data="free_flow_time")) == sorted(b.edges(data="free_flow_time"))
    assert sorted(a.edges) != sorted(synthetic_city(6, 5, seed=4).edges)
    kinds = {kind for _, _, kind in a.edges(data="link_type")}
    assert kinds == {"arterial", "local", "diagonal"}
    one_way = [(u, v) for u, v in a.edges if not a.has_edge(v, u)]
    assert one_way, "some streets are one-way"
    for _, _, data in a.edges(data=True):
        assert data["free_flow_time"] == pytest.approx(60 * data["length"] / data["speed"])


def test_synthetic_city_rejects_tiny_grids() -> None:
    with pytest.raises(ConfigError, match="rows and cols"):
        synthetic_city(2, 5)


def test_links_columns_follow_sorted_nodes_and_heads() -> None:
    graph = nx.DiGraph()
    graph.add_edge("b", "a", free_flow_time=1.0, capacity=10.0)
    graph.add_edge("a", "c", free_flow_time=2.0, capacity=10.0, b=0.3)
    graph.add_edge("a", "b", free_flow_time=3.0, capacity=10.0)
    links = links_from_graph(graph)
    assert links.nodes == ["a", "b", "c"]
    assert [links.head[k].tolist() for k in links.out] == [[1, 2], [0], []]
    assert links.free_flow.tolist() == [3.0, 2.0, 1.0]
    assert links.b.tolist() == [0.15, 0.3, 0.15]
    assert links.max_out_degree == 2
    assert links.reaching(2).tolist() == [True, True, True]
    assert links.reaching(1).tolist() == [True, True, False]


def test_links_need_times_and_capacities() -> None:
    graph = nx.DiGraph()
    graph.add_edge(0, 1, capacity=1.0)
    with pytest.raises(InvalidData, match="free_flow_time"):
        links_from_graph(graph)


def test_read_tntp_reads_links_and_reports_bad_rows(tmp_path: Path) -> None:
    net = tmp_path / "Tiny_net.tntp"
    net.write_text(NET)
    found = read_tntp(net)
    graph = found.graph
    assert sorted(graph.edges) == [(1, 2), (1, 3), (2, 1), (3, 4), (4, 2)]
    assert graph.edges[1, 3]["b"] == 0.3
    assert graph.edges[1, 3]["power"] == 2.0
    assert graph.edges[4, 2]["b"] == 0.15  # optional fields take their defaults
    assert graph.edges[1, 2]["capacity"] == 25900.2  # the repeated link keeps the first row
    assert found.metadata["NUMBER OF LINKS"] == "6"
    reasons = {(row.line, row.reason.split(":")[0].split(",")[0]) for row in found.bad}
    assert reasons == {
        (14, "not a number"),
        (15, "capacity must be > 0"),
        (17, "link 1->2 repeated; the first one is kept"),
        (18, "expected at least 5 fields (init term capacity length time)"),
        (0, "header says <NUMBER OF LINKS> 6"),
    }
    assert str(found.bad[0]).startswith(f"{net}:14: ")


def test_read_tntp_trips_and_nodes(tmp_path: Path) -> None:
    (tmp_path / "net.tntp").write_text(NET)
    (tmp_path / "trips.tntp").write_text(TRIPS)
    (tmp_path / "node.tntp").write_text(NODES)
    found = read_tntp(tmp_path / "net.tntp", tmp_path / "trips.tntp", tmp_path / "node.tntp")
    assert found.trips == {(1, 2): 100.0, (1, 3): 200.0, (4, 1): 300.0}
    assert found.graph.nodes[2]["pos"] == (1.0, 0.0)
    assert "pos" not in found.graph.nodes[3]
    lines = {(Path(b.path).name, b.line) for b in found.bad}
    assert ("trips.tntp", 9) in lines
    assert ("node.tntp", 4) in lines


def test_read_tntp_without_any_valid_row_fails(tmp_path: Path) -> None:
    net = tmp_path / "bad_net.tntp"
    net.write_text("<END OF METADATA>\n1 2 x 1 1 ;\n")
    with pytest.raises(InvalidData, match="no valid link rows"):
        read_tntp(net)
