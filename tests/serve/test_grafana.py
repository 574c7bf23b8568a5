"""deploy/grafana/alphaops.json: a valid Grafana dashboard whose every query (panels and
template variables) names only metrics the alphaops exporters really emit, and that shows every
metric family they emit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .conftest import Journaled
from .test_alerts import emitted_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "alphaops.json"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "le", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects (functions, labels, keywords out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\blabel_values\s*\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", text):  # not 5m, 1e3
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue  # a function call or an operator
        names.add(match.group())
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_the_extractor_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, model) (rate(x_seconds_bucket{model=~"$m",'
        'le="0.5"}[5m]))) / on(model) group_left y_total offset 5m and time() - z'
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "z"}
    assert metric_names("label_values(alphaops_alias_version, model)") == {"alphaops_alias_version"}


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "alphaops"
    assert isinstance(dashboard["schemaVersion"], int)
    panels = list(_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == "${datasource}"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs), panel["title"]
    # No two panels overlap on the grid.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_every_query_names_a_metric_the_exporters_emit(journaled: Journaled) -> None:
    emitted = emitted_metrics(journaled)
    queries = _queries(json.loads(DASHBOARD.read_text()))
    queried = set().union(*(metric_names(q) for q in queries))
    assert "alphaops_live_win_rate" in queried
    unknown = {name: [q for q in queries if name in metric_names(q)] for name in queried - emitted}
    assert not unknown, f"queried but never emitted: {unknown}"
    # And it shows every family the exporters emit (a histogram through any of its series).
    families = {re.sub(r"_(bucket|sum|count|total|created)$", "", n) for n in emitted}
    shown = {re.sub(r"_(bucket|sum|count|total|created)$", "", n) for n in queried}
    assert families <= shown, f"emitted but on no panel: {sorted(families - shown)}"
