"""Shortest paths on link columns: static and time-dependent Dijkstra, and driving a path.

:func:`time_dependent_path` is label-setting Dijkstra where a link's cost depends on the
time the vehicle enters it; with FIFO link times (:class:`~iotml.control.traffic.DayTimes`
guarantees them) the earliest arrival it finds is exact, so it is the perfect-knowledge lower
bound. :func:`shortest_path` is the same search with fixed link costs (free-flow times, or a
snapshot of current times). :func:`drive` replays a path through a day's times.

>>> from iotml.control.roads import links_from_graph, synthetic_city
>>> from iotml.control.traffic import DayTimes
>>> links = links_from_graph(synthetic_city(4, 4, seed=0))
>>> path = shortest_path(links, 0, 15, links.free_flow)
>>> static = DayTimes.static(links, 96, 15.0)
>>> fastest = time_dependent_path(links, 0, 15, 8 * 60.0, static)
>>> fastest == path, round(drive(links, path, 8 * 60.0, static), 6) == round(
...     float(links.free_flow[path].sum()), 6)
(True, True)
"""

from __future__ import annotations

__all__ = ["drive", "shortest_path", "time_dependent_path"]

import heapq
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from iotml.control.roads import Links
from iotml.control.traffic import DayTimes
from iotml.errors import InvalidData


def _search(
    links: Links, origin: int, destination: int, start: float, cost: Callable[[int, float], float]
) -> list[int]:
    """Label-setting search from ``origin`` at time ``start``; the links of the best path."""
    best = {origin: start}
    via: dict[int, int] = {}
    heap = [(start, origin)]
    done: set[int] = set()
    heads = links.head
    while heap:
        t, node = heapq.heappop(heap)
        if node in done:
            continue
        if node == destination:
            break
        done.add(node)
        for link in links.out[node].tolist():
            head = int(heads[link])
            arrival = t + cost(link, t)
            if head not in done and arrival < best.get(head, np.inf):
                best[head] = arrival
                via[head] = link
                heapq.heappush(heap, (arrival, head))
    if destination not in best:
        raise InvalidData(
            f"node {links.nodes[destination]!r} cannot be reached from {links.nodes[origin]!r}"
        )
    path = []
    node = destination
    while node != origin:
        link = via[node]
        path.append(link)
        node = int(links.tail[link])
    return path[::-1]


def shortest_path(
    links: Links, origin: int, destination: int, weights: npt.NDArray[np.float64]
) -> list[int]:
    """The links of a shortest path under fixed, non-negative link ``weights``."""
    w = weights.tolist()
    return _search(links, origin, destination, 0.0, lambda link, _t: w[link])


def time_dependent_path(
    links: Links, origin: int, destination: int, depart: float, day: DayTimes
) -> list[int]:
    """The links of the earliest-arrival path leaving ``origin`` at ``depart`` (minutes)."""
    return _search(links, origin, destination, depart, day.travel_time)


def drive(links: Links, path: list[int], depart: float, day: DayTimes) -> float:
    """Minutes to drive ``path`` leaving at ``depart``, each link timed when it is entered."""
    t = depart
    for link in path:
        t += day.travel_time(link, t)
    return t - depart
