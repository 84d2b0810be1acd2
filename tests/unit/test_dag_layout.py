"""The workflow DAG's layout (interfaces/api/dag_layout.py) and its SVG (templates/_dag.html):
layered by dependency depth, no two nodes overlapping at 100 steps or 30 parallel branches,
every edge pointing right, each node coloured by its step's state, and every text escaped."""

import re
from itertools import combinations

import pytest

from interfaces.api.dag_layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    Layout,
    StepView,
    dag_layout,
    label,
    node_state,
)
from interfaces.api.ui import templates

Needs = dict[str, list[str]]


def _no_overlap(layout: Layout) -> None:
    for a, b in combinations(layout.nodes, 2):
        apart_x = a.x + NODE_WIDTH <= b.x or b.x + NODE_WIDTH <= a.x
        apart_y = a.y + NODE_HEIGHT <= b.y or b.y + NODE_HEIGHT <= a.y
        assert apart_x or apart_y, (a, b)
    for node in layout.nodes:
        assert node.x >= 0
        assert node.y >= 0
        assert node.x + NODE_WIDTH <= layout.width
        assert node.y + NODE_HEIGHT <= layout.height


def _svg(layout: Layout) -> str:
    return str(templates.env.from_string('{% from "_dag.html" import dag %}{{ dag(l) }}')
               .render(l=layout))


def test_a_diamond_is_three_columns_with_its_edges_pointing_right() -> None:
    needs: Needs = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}

    layout = dag_layout(needs, {})

    levels = {n.id: n.level for n in layout.nodes}
    assert levels == {"a": 0, "b": 1, "c": 1, "d": 2}
    by_id = {n.id: n for n in layout.nodes}
    assert by_id["b"].x == by_id["c"].x > by_id["a"].x
    assert by_id["b"].y < by_id["c"].y  # as declared
    assert by_id["a"].y + NODE_HEIGHT // 2 == (by_id["b"].y + by_id["c"].y + NODE_HEIGHT) // 2
    assert {(e.source, e.target) for e in layout.edges} == {
        ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")
    }
    for edge in layout.edges:
        start, end = re.findall(r"[MC ](\d+),(\d+)", edge.path)[0], edge.path.split()[-1]
        assert int(start[0]) == by_id[edge.source].x + NODE_WIDTH
        assert int(end.split(",")[0]) == by_id[edge.target].x
    _no_overlap(layout)


def test_100_steps_in_a_chain_and_30_parallel_branches_never_overlap() -> None:
    chain: Needs = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(100)}
    fan: Needs = {"start": [], **{f"b{i}": ["start"] for i in range(30)},
                  "join": [f"b{i}" for i in range(30)]}
    branches: Needs = {"root": []}  # 20 branches of 4 steps, then one join: 82 steps
    for b in range(20):
        for s in range(4):
            branches[f"b{b}-s{s}"] = [f"b{b}-s{s - 1}"] if s else ["root"]
    branches["end"] = [f"b{b}-s3" for b in range(20)]

    for needs in (chain, fan, branches):
        layout = dag_layout(needs, {})
        assert len(layout.nodes) == len(needs)
        _no_overlap(layout)
    assert len({n.level for n in dag_layout(chain, {}).nodes}) == 100
    wide = dag_layout(fan, {})
    assert len({n.y for n in wide.nodes if n.level == 1}) == 30
    # each branch keeps its row: its steps follow the steps they need (no crossings)
    rows = {n.id: n.y for n in dag_layout(branches, {}).nodes}
    for b in range(20):
        assert len({rows[f"b{b}-s{s}"] for s in range(4)}) == 1


def test_a_step_that_needs_a_lower_branch_is_drawn_lower() -> None:
    needs: Needs = {"a": [], "b": [], "c": [], "x": ["c"], "y": ["a"]}

    rows = {n.id: n.y for n in dag_layout(needs, {}).nodes}

    assert rows["y"] < rows["x"]  # by the needed steps' heights, not as declared


@pytest.mark.parametrize(
    ("step", "compensation", "shown"),
    [("succeeded", "succeeded", "compensated"), ("succeeded", "running", "succeeded"),
     ("failed", None, "failed"), ("skipped", None, "skipped")],
)
def test_node_state(step: str, compensation: str | None, shown: str) -> None:
    assert node_state(step, compensation) == shown


def test_the_svg_colours_each_node_by_its_state_and_links_its_call() -> None:
    needs: Needs = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    views = {"a": StepView("succeeded", "0196-a", "200"), "b": StepView("failed", "0196-b"),
             "c": StepView("compensated"), "d": StepView("pending")}

    svg = _svg(dag_layout(needs, views))

    states = dict(re.findall(r'data-step="([^"]+)" data-state="([^"]+)"', svg))
    assert states == {"a": "succeeded", "b": "failed", "c": "compensated", "d": "pending"}
    assert svg.count('class="node st-succeeded"') == 1
    assert '<a href="/ui/calls/0196-a">' in svg
    assert "succeeded · 200" in svg
    assert svg.count('<path class="edge"') == 4


def test_every_text_in_the_svg_is_escaped() -> None:
    hostile = '"><script>alert(1)</script><svg onload=alert(2)>'
    needs: Needs = {hostile: [], "b&c": [hostile]}
    views = {hostile: StepView("failed", 'x"><script>', f"<b>{hostile}</b>")}

    svg = _svg(dag_layout(needs, views))

    assert "<script>" not in svg
    assert "onload=alert(2)>" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'data-from="&#34;&gt;&lt;script&gt;' in svg
    assert "b&amp;c" in svg


def test_a_long_step_id_is_cut_in_its_node_and_whole_in_its_title() -> None:
    step = "a" * 63
    svg = _svg(dag_layout({step: []}, {}))
    assert label(step) == "a" * 21 + "…"
    assert f"<title>{step}: pending</title>" in svg
    assert f">{'a' * 21}…</text>" in svg
