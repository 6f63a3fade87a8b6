"""Road networks: a seeded synthetic city, the TNTP loader, link arrays and the BPR function.

A road network is a :class:`networkx.DiGraph` whose edges carry ``free_flow_time``
(minutes), ``capacity`` (vehicles per hour), ``length`` (km for the synthetic city, the
file's unit for TNTP), and the BPR parameters ``b`` and ``power``. Routing code does not walk
the graph on its hot path: :func:`links_from_graph` turns it into :class:`Links`, numpy
columns with one row per link and, per node, its outgoing links in a fixed order (by head
node), which is what the environment's action numbers refer to.

Link travel time follows the Bureau of Public Roads volume-delay function
``t = t0 (1 + b (v / c) ** power)`` (:func:`bpr`), ``b = 0.15`` and ``power = 4`` unless
a TNTP file says otherwise.

>>> city = synthetic_city(rows=4, cols=4, seed=0)
>>> links = links_from_graph(city)
>>> links.n_nodes, links.n_links > 40, links.max_out_degree >= 4
(16, True, True)
>>> float(bpr(10.0, 1000.0, 1000.0))  # at capacity: 15 % slower than free flow
11.5
"""

from __future__ import annotations

__all__ = [
    "BadRow",
    "Links",
    "TntpNetwork",
    "bpr",
    "links_from_graph",
    "read_tntp",
    "synthetic_city",
]

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData
from iotml.types import BadRow

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_ARTERIAL = {"speed": 50.0, "capacity": 1800.0, "link_type": "arterial"}  # 2 lanes, signals
_LOCAL = {"speed": 30.0, "capacity": 700.0, "link_type": "local"}
_DIAGONAL = {"speed": 40.0, "capacity": 1200.0, "link_type": "diagonal"}


def bpr(
    free_flow_time: FloatArray | float,
    volume: FloatArray | float,
    capacity: FloatArray | float,
    b: FloatArray | float = 0.15,
    power: FloatArray | float = 4.0,
) -> FloatArray:
    """Link travel time from the BPR volume-delay function, ``t0 (1 + b (v/c) ** power)``.

    Parameters
    ----------
    free_flow_time, volume, capacity, b, power : array-like, broadcast together
        Free-flow time (any time unit; the result has the same), volume and capacity (same
        flow unit), and the function's parameters.

    Returns
    -------
    ndarray
        Travel times, float64.

    >>> bpr([1.0, 2.0], [0.0, 1800.0], 900.0).tolist()  # empty road; twice the capacity
    [1.0, 6.8]
    """
    cap = np.asarray(capacity, dtype=np.float64)
    if np.any(~(cap > 0)):
        raise InvalidData(f"capacity must be > 0 everywhere, got minimum {float(np.min(cap))!r}")
    ratio = np.asarray(volume, dtype=np.float64) / cap
    t0 = np.asarray(free_flow_time, dtype=np.float64)
    out: FloatArray = t0 * (1.0 + np.asarray(b, dtype=np.float64) * ratio**power)
    return out


@dataclass(frozen=True, eq=False)
class Links:
    """A road network as link columns; row ``i`` of every array is link ``i``.

    Attributes
    ----------
    nodes : list
        Node labels; internal node ``k`` is ``nodes[k]``.
    tail, head : int arrays
        Internal node numbers of each link's ends.
    free_flow, capacity, b, power, length : float arrays
        Link attributes (minutes, vehicles/h, BPR parameters, length).
    out : list of int arrays
        ``out[k]``: the links leaving node ``k``, ordered by head node. Action ``a`` at node
        ``k`` takes link ``out[k][a]``.
    """

    nodes: list[Any]
    tail: IntArray
    head: IntArray
    free_flow: FloatArray
    capacity: FloatArray
    b: FloatArray
    power: FloatArray
    length: FloatArray
    out: list[IntArray] = field(repr=False)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_links(self) -> int:
        return len(self.tail)

    @property
    def max_out_degree(self) -> int:
        return max((len(o) for o in self.out), default=0)

    def index(self, label: Any) -> int:
        """The internal number of the node labelled ``label``."""
        try:
            return self.nodes.index(label)
        except ValueError as err:
            raise ConfigError(f"node {label!r} is not in the network") from err

    def reaching(self, target: int) -> npt.NDArray[np.bool_]:
        """Which nodes have a path to node ``target`` (``target`` itself included)."""
        into: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for t, h in zip(self.tail.tolist(), self.head.tolist(), strict=True):
            into[h].append(t)
        seen = np.zeros(self.n_nodes, dtype=bool)
        seen[target] = True
        stack = [target]
        while stack:
            for t in into[stack.pop()]:
                if not seen[t]:
                    seen[t] = True
                    stack.append(t)
        return seen


def links_from_graph(graph: nx.DiGraph) -> Links:
    """Link columns of a road graph (see the module docstring for the edge attributes).

    Nodes are numbered in sorted label order and each node's outgoing links ordered by head,
    so the same graph always gives the same action numbers.
    """
    try:
        nodes = sorted(graph.nodes)
    except TypeError:  # labels of mixed types: keep insertion order, still deterministic
        nodes = list(graph.nodes)
    if not nodes or graph.number_of_edges() == 0:
        raise InvalidData("the road graph has no nodes or no links")
    number = {label: k for k, label in enumerate(nodes)}
    rows = sorted((number[u], number[v], data) for u, v, data in graph.edges(data=True))
    columns: dict[str, list[float]] = {k: [] for k in ("free_flow_time", "capacity", "length")}
    bpr_b, bpr_power = [], []
    for u, v, data in rows:
        for key, values in columns.items():
            if key not in data and key != "length":
                raise InvalidData(f"link {nodes[u]!r}->{nodes[v]!r} has no {key!r} attribute")
            values.append(float(data.get(key, 0.0)))
        bpr_b.append(float(data.get("b", 0.15)))
        bpr_power.append(float(data.get("power", 4.0)))
    tail = np.array([u for u, _, _ in rows], dtype=np.int64)
    bounds = np.searchsorted(tail, np.arange(len(nodes) + 1))
    out = [np.arange(bounds[k], bounds[k + 1], dtype=np.int64) for k in range(len(nodes))]
    return Links(
        nodes=nodes,
        tail=tail,
        head=np.array([v for _, v, _ in rows], dtype=np.int64),
        free_flow=np.array(columns["free_flow_time"]),
        capacity=np.array(columns["capacity"]),
        b=np.array(bpr_b),
        power=np.array(bpr_power),
        length=np.array(columns["length"]),
        out=out,
    )


# -- the synthetic city ---------------------------------------------------------------------


def synthetic_city(
    rows: int = 8, cols: int = 8, *, block_km: float = 1.0, seed: int | None = 0
) -> nx.DiGraph:
    """A seeded grid city: local streets, faster arterials, two diagonals and a few one-ways.

    Every third row and column (counting from the second) is a two-way arterial (50 km/h,
    1800 veh/h); the other streets are local (30 km/h, 700 veh/h). Two diagonal avenues
    (40 km/h, 1200 veh/h) cross the city, and about a sixth of the local street segments
    are one-way (only where the city stays strongly connected). Node positions are jittered
    so that link lengths, and hence free-flow times, differ: shortest paths are rarely tied.

    Parameters
    ----------
    rows, cols : int
        Grid size (at least 3 each); nodes are numbered ``r * cols + c``.
    block_km : float
        Mean distance between neighbouring intersections.
    seed : int or None
        Seeds the jitter and the choice of one-way streets.

    Returns
    -------
    networkx.DiGraph
        Node attribute ``pos`` (km); edge attributes as in the module docstring, plus
        ``speed`` (km/h) and ``link_type``.
    """
    if rows < 3 or cols < 3:
        raise ConfigError(f"rows and cols must be >= 3, got {rows!r} x {cols!r}")
    if not block_km > 0:
        raise ConfigError(f"block_km must be > 0, got {block_km!r}")
    rng = np.random.default_rng(seed)
    graph = nx.DiGraph(name=f"synthetic city {rows}x{cols} seed {seed}")
    jitter = rng.uniform(-0.2, 0.2, size=(rows, cols, 2)) * block_km
    for r in range(rows):
        for c in range(cols):
            x, y = c * block_km + jitter[r, c, 0], r * block_km + jitter[r, c, 1]
            graph.add_node(r * cols + c, pos=(float(x), float(y)))
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                _street(graph, r * cols + c, r * cols + c + 1, _ARTERIAL if r % 3 == 1 else _LOCAL)
            if r + 1 < rows:
                _street(
                    graph, r * cols + c, (r + 1) * cols + c, _ARTERIAL if c % 3 == 1 else _LOCAL
                )
    for r0, c0, dc in ((0, 0, 1), (0, cols - 1, -1)):
        for step in range(min(rows, cols) - 1):
            u = (r0 + step) * cols + c0 + dc * step
            _street(graph, u, u + cols + dc, _DIAGONAL)
    _one_ways(graph, rng)
    return graph


def _street(graph: nx.DiGraph, u: int, v: int, kind: dict[str, Any]) -> None:
    (x1, y1), (x2, y2) = graph.nodes[u]["pos"], graph.nodes[v]["pos"]
    length = math.hypot(x2 - x1, y2 - y1)
    attrs = {
        "length": length,
        "free_flow_time": 60.0 * length / kind["speed"],
        "capacity": kind["capacity"],
        "b": 0.15,
        "power": 4.0,
        "speed": kind["speed"],
        "link_type": kind["link_type"],
    }
    graph.add_edge(u, v, **attrs)
    graph.add_edge(v, u, **attrs)


def _one_ways(graph: nx.DiGraph, rng: np.random.Generator) -> None:
    pairs = sorted(
        (u, v) for u, v, kind in graph.edges(data="link_type") if kind == "local" and u < v
    )
    for i in rng.permutation(len(pairs))[: len(pairs) // 6]:
        u, v = pairs[int(i)]
        drop = (u, v) if rng.random() < 0.5 else (v, u)
        attrs = graph.edges[drop]
        graph.remove_edge(*drop)
        if not nx.is_strongly_connected(graph):
            graph.add_edge(*drop, **attrs)


# -- TNTP -----------------------------------------------------------------------------------


@dataclass(eq=False)
class TntpNetwork:
    """What :func:`read_tntp` read: the graph, the trip table and the rows it skipped.

    Attributes
    ----------
    graph : networkx.DiGraph
        Nodes are the file's integer node numbers; edges carry ``capacity``, ``length``,
        ``free_flow_time``, ``b``, ``power``, ``speed``, ``toll`` and ``link_type``.
    trips : dict
        ``(origin, destination) -> demand`` from the trips file (empty without one);
        zero entries are left out.
    metadata : dict
        The net file's ``<KEY> value`` header, e.g. ``{"NUMBER OF NODES": "24", ...}``.
    bad : list of BadRow
        Rows skipped in any of the files, each naming file, line and reason.
    """

    graph: nx.DiGraph
    trips: dict[tuple[int, int], float]
    metadata: dict[str, str]
    bad: list[BadRow]


_META = re.compile(r"^<([^>]+)>\s*(.*)$")
_NET_FIELDS = ("capacity", "length", "free_flow_time", "b", "power", "speed", "toll", "link_type")


def read_tntp(
    net_path: str | Path, trips_path: str | Path | None = None, node_path: str | Path | None = None
) -> TntpNetwork:
    """Read a road network in the TNTP format of the transportation-network test problems.

    The net file has a ``<KEY> value`` metadata header up to ``<END OF METADATA>``, comment
    or column-header lines starting with ``~``, then one link per row ending in ``;``:
    ``init_node term_node capacity length free_flow_time b power speed toll link_type``
    (the last five optional: ``b`` 0.15, ``power`` 4, the rest 0). Malformed rows — too
    few fields, non-numbers, a capacity that is not positive, a negative time or length, a
    repeated link — are skipped and listed in :attr:`TntpNetwork.bad`, never fatal. The
    ``<FIRST THRU NODE>`` restriction on routing through zone centroids is not modelled.

    Parameters
    ----------
    net_path : path
        The ``*_net.tntp`` file.
    trips_path : path, optional
        The ``*_trips.tntp`` file: ``Origin k`` lines followed by ``dest : demand;`` pairs.
    node_path : path, optional
        The ``*_node.tntp`` file: ``node x y`` rows, stored as the node attribute ``pos``.

    Returns
    -------
    TntpNetwork
    """
    graph = nx.DiGraph(name=Path(net_path).stem)
    bad: list[BadRow] = []
    metadata: dict[str, str] = {}
    for number, row in _rows(net_path, metadata):
        problem = _add_link(graph, row)
        if problem:
            bad.append(BadRow(str(net_path), number, problem))
    if graph.number_of_edges() == 0:
        raise InvalidData(f"{net_path}: no valid link rows ({len(bad)} malformed)")
    _check_counts(graph, metadata, str(net_path), bad)
    trips = {} if trips_path is None else _read_trips(trips_path, bad)
    if node_path is not None:
        _read_nodes(graph, node_path, bad)
    return TntpNetwork(graph=graph, trips=trips, metadata=metadata, bad=bad)


def _rows(path: str | Path, metadata: dict[str, str]) -> list[tuple[int, str]]:
    """(line number, text) of the data rows, after the metadata, without comments."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    in_header = any(line.strip().upper() == "<END OF METADATA>" for line in lines)
    found = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if in_header:
            match = _META.match(line)
            if match and match.group(1).upper() == "END OF METADATA":
                in_header = False
            elif match:
                metadata[match.group(1).strip().upper()] = match.group(2).strip()
            continue
        if line and not line.startswith("~"):
            found.append((number, line))
    return found


def _add_link(graph: nx.DiGraph, row: str) -> str:
    """Add one net-file row to ``graph``; the reason it is malformed, or ``""``."""
    fields = row.rstrip(";").split()
    if len(fields) < 5:
        return f"expected at least 5 fields (init term capacity length time), got {len(fields)}"
    try:
        u, v = int(fields[0]), int(fields[1])
        values = [float(f) for f in fields[2:10]]
    except ValueError as err:
        return f"not a number: {err}"
    attrs = dict(
        zip(_NET_FIELDS, values + [0.15, 4.0, 0.0, 0.0, 0.0][len(values) - 3 :], strict=True)
    )
    if not all(math.isfinite(x) for x in attrs.values()):
        return "a value is not finite"
    if attrs["capacity"] <= 0:
        return f"capacity must be > 0, got {attrs['capacity']!r}"
    if attrs["free_flow_time"] < 0 or attrs["length"] < 0:
        return "free-flow time and length must be >= 0"
    if graph.has_edge(u, v):
        return f"link {u}->{v} repeated; the first one is kept"
    graph.add_edge(u, v, **attrs)
    return ""


def _check_counts(graph: nx.DiGraph, meta: dict[str, str], path: str, bad: list[BadRow]) -> None:
    for key, found in (
        ("NUMBER OF LINKS", graph.number_of_edges()),
        ("NUMBER OF NODES", graph.number_of_nodes()),
    ):
        stated = meta.get(key, "").split()
        if stated and stated[0].isdigit() and int(stated[0]) != found:
            bad.append(BadRow(path, 0, f"header says <{key}> {stated[0]}, read {found}"))


def _read_trips(path: str | Path, bad: list[BadRow]) -> dict[tuple[int, int], float]:
    trips: dict[tuple[int, int], float] = {}
    origin: int | None = None
    for number, line in _rows(path, {}):
        if line.lower().startswith("origin"):
            try:
                origin = int(line.split()[1])
            except (IndexError, ValueError):
                bad.append(BadRow(str(path), number, f"bad origin line {line!r}"))
                origin = None
            continue
        if origin is None:
            bad.append(BadRow(str(path), number, "demand before any 'Origin' line"))
            continue
        for pair in filter(None, (p.strip() for p in line.split(";"))):
            dest, _, demand = pair.partition(":")
            try:
                value = float(demand)
                if not (math.isfinite(value) and value >= 0):
                    raise ValueError(f"demand must be finite and >= 0, got {demand.strip()!r}")
                if value > 0:
                    trips[origin, int(dest)] = value
            except ValueError as err:
                bad.append(BadRow(str(path), number, f"bad 'dest : demand' pair {pair!r}: {err}"))
    return trips


def _read_nodes(graph: nx.DiGraph, path: str | Path, bad: list[BadRow]) -> None:
    for i, (number, line) in enumerate(_rows(path, {})):
        fields = line.rstrip(";").split()
        if i == 0 and fields and fields[0].isalpha():
            continue  # the column header, e.g. "Node X Y ;"
        try:
            node, x, y = int(fields[0]), float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            bad.append(BadRow(str(path), number, f"expected 'node x y', got {line!r}"))
            continue
        if node in graph:
            graph.nodes[node]["pos"] = (x, y)
