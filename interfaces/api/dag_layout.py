"""A workflow run's DAG laid out for the dashboard's SVG (``templates/_dag.html`` draws it).

Layered by dependency depth (``domain.workflow_graph.levels``): one column per level, left
to right, so every edge (``needs``) points right. In a column, steps are ordered by the mean
height of the steps they need (fewer crossings), then as declared. Each step has a grid cell
of its own, so no two nodes overlap whatever the number of steps or parallel branches: the
drawing grows (its container scrolls) instead of shrinking. A column shorter than the
tallest is centred.

Pure: plain values in, plain values out; the template escapes every text it draws (step ids
and reasons are tenant input).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.workflow_graph import levels

NODE_WIDTH = 184
NODE_HEIGHT = 46
GAP_X = 64  # between columns: room for the edges' curves
GAP_Y = 16
MARGIN = 12
LABEL_CHARS = 22  # a step id longer than this is cut (the whole id is the node's title)
NODE_STATES = (
    "pending", "running", "succeeded", "failed", "skipped", "cancelled", "compensated"
)


@dataclass(frozen=True)
class StepView:
    """What a node shows of a step."""

    state: str  # one of NODE_STATES
    call_id: str | None = None
    detail: str = ""  # under the state: the status code, the attempts


@dataclass(frozen=True)
class Node:
    id: str
    label: str  # the id, cut to LABEL_CHARS
    level: int
    x: int
    y: int
    view: StepView


@dataclass(frozen=True)
class Edge:
    source: str  # the step needed
    target: str  # the step that needs it
    path: str  # SVG path data


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def node_state(step_state: str, compensation_state: str | None) -> str:
    """The node's colour: a succeeded step whose compensation succeeded is ``compensated``;
    otherwise the step's own state."""
    if compensation_state == "succeeded":
        return "compensated"
    return step_state


def label(step_id: str) -> str:
    return step_id if len(step_id) <= LABEL_CHARS else step_id[: LABEL_CHARS - 1] + "…"


def dag_layout(needs: Mapping[str, Sequence[str]], views: Mapping[str, StepView]) -> Layout:
    """The nodes' places and the edges' curves (``needs`` acyclic, as a definition's)."""
    declared = {step: index for index, step in enumerate(needs)}
    columns = _ordered_columns(levels(needs), needs, declared)
    pitch_y = NODE_HEIGHT + GAP_Y
    tallest = max((len(column) for column in columns), default=0)
    places: dict[str, tuple[int, int]] = {}
    nodes = []
    for level, column in enumerate(columns):
        x = MARGIN + level * (NODE_WIDTH + GAP_X)
        top = MARGIN + (tallest - len(column)) * pitch_y // 2
        for row, step in enumerate(column):
            places[step] = (x, top + row * pitch_y)
            view = views.get(step, StepView("pending"))
            nodes.append(Node(step, label(step), level, x, top + row * pitch_y, view))
    edges = tuple(
        Edge(needed, step, _curve(places[needed], places[step]))
        for step in needs for needed in needs[step]
    )
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * GAP_X
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * GAP_Y
    return Layout(tuple(nodes), edges, width, height)


def _ordered_columns(
    grouped: Sequence[Sequence[str]],
    needs: Mapping[str, Sequence[str]],
    declared: Mapping[str, int],
) -> list[list[str]]:
    """Each level's steps by the mean height of the steps they need (barycentre), then as
    declared; the first level as declared. Heights are counted from the columns' common
    centre line, as they are drawn."""
    heights: dict[str, float] = {}
    columns: list[list[str]] = []
    for group in grouped:
        def key(step: str) -> tuple[float, int]:
            needed = [heights[n] for n in needs[step]]
            return (sum(needed) / len(needed) if needed else 0.0, declared[step])

        column = sorted(group, key=key)
        middle = (len(column) - 1) / 2
        heights.update({step: row - middle for row, step in enumerate(column)})
        columns.append(column)
    return columns


def _curve(source: tuple[int, int], target: tuple[int, int]) -> str:
    """From the right middle of the needed step to the left middle of the step that needs
    it: a horizontal S-curve."""
    x1, y1 = source[0] + NODE_WIDTH, source[1] + NODE_HEIGHT // 2
    x2, y2 = target[0], target[1] + NODE_HEIGHT // 2
    bend = max((x2 - x1) // 2, GAP_X // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
