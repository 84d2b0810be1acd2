"""The step graph: ``needs`` as a mapping from a step to the steps it needs.

Pure graph functions, deterministic: ties are broken by the order steps are declared in
(the mapping's order), so a definition always gives the same order and levels. Iterative,
so a long chain cannot exhaust Python's recursion limit.
"""

import heapq
from collections.abc import Mapping, Sequence

Needs = Mapping[str, Sequence[str]]


def find_cycle(needs: Needs) -> list[str] | None:
    """A cycle as the steps along it, the first repeated at the end (``[a, b, a]``: a
    needs b, b needs a), or None. Needs naming unknown steps are ignored."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in needs:
        if state.get(start):
            continue
        path: list[str] = [start]
        pending: list[list[str]] = [list(needs[start])]
        state[start] = 1
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            step = pending[-1].pop(0)
            if step not in needs or state.get(step) == 2:
                continue
            if state.get(step) == 1:
                return [*path[path.index(step) :], step]
            state[step] = 1
            path.append(step)
            pending.append(list(needs[step]))
    return None


def levels(needs: Needs) -> tuple[tuple[str, ...], ...]:
    """Steps by level: level 0 needs nothing, level n needs only steps of lower levels,
    one of them of level n - 1. Steps of one level may run side by side. The graph must be
    acyclic (``find_cycle``)."""
    level: dict[str, int] = {}
    for step in topological_order(needs):
        level[step] = 1 + max((level[n] for n in needs[step]), default=-1)
    grouped: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for step in needs:
        grouped[level[step]].append(step)
    return tuple(tuple(group) for group in grouped)


def topological_order(needs: Needs) -> tuple[str, ...]:
    """Every step after the steps it needs; among steps free to go, the first declared
    first. Raises ``ValueError`` on a cycle."""
    waiting = {step: len(set(needs[step])) for step in needs}
    needed_by: dict[str, list[str]] = {step: [] for step in needs}
    for step, needed in needs.items():
        for other in dict.fromkeys(needed):
            needed_by[other].append(step)
    steps = list(needs)
    position = {step: n for n, step in enumerate(steps)}
    free = [n for n, step in enumerate(steps) if waiting[step] == 0]  # a heap of positions
    order: list[str] = []
    while free:
        step = steps[heapq.heappop(free)]
        order.append(step)
        for other in needed_by[step]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(free, position[other])
    if len(order) != len(needs):
        raise ValueError("the steps' needs form a cycle")
    return tuple(order)


def ancestors(needs: Needs) -> dict[str, frozenset[str]]:
    """Each step's transitive needs (the graph must be acyclic)."""
    found: dict[str, frozenset[str]] = {}
    for step in topological_order(needs):
        found[step] = frozenset(needs[step]).union(*(found[n] for n in needs[step]))
    return found
