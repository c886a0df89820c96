"""deploy/grafana/opencomputer.json: every panel reads metrics the code really exports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.files import (
    DEPLOY,
    ROOT,
    exported_families,
    exported_series,
    grouping_labels,
    metric_names,
)

DASHBOARD = DEPLOY / "grafana" / "opencomputer.json"
# Labels Prometheus adds when it scrapes (not set by the code).
TARGET_LABELS = {"job", "instance", "namespace", "pod"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_layout(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "opencomputer" and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


def test_every_expression_reads_exported_series(dashboard: dict[str, Any]) -> None:
    exported = exported_series()
    read: set[str] = set()
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            names = metric_names(expr)
            assert names, f"{panel['title']}: no opencomputer metric in {expr!r}"
            unknown = names - set(exported)
            assert not unknown, f"{panel['title']}: {unknown} is not exported"
            labels = set().union(*(exported[n] for n in names)) | TARGET_LABELS
            assert grouping_labels(expr) <= labels, (panel["title"], expr)
            read |= names
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert metric_names(variable["query"]) <= set(exported)
    # and the dashboard covers what the issue asks for
    for wanted in (
        "oc_turns_total",
        "oc_turn_seconds_bucket",
        "oc_model_seconds_bucket",
        "oc_model_tokens_total",
        "oc_tool_calls_total",
        "oc_tool_errors_total",
        "oc_queue_depth",
        "oc_stream_lag",
        "oc_connector_up",
        "oc_feedback_total",
    ):
        assert wanted in read, wanted


def test_metric_names_are_defined_in_the_code() -> None:
    # the registry above is built by bot/metrics.py; each family is spelt out there once
    source = (ROOT / "bot" / "metrics.py").read_text(encoding="utf-8")
    families = exported_families()
    assert len(families) >= 15
    for family in families:
        assert f'"{family}"' in source, family


def test_checker_catches_a_wrong_name() -> None:
    exported = exported_series()
    assert metric_names("sum(rate(oc_turns_count[5m]))") - set(exported) == {"oc_turns_count"}
    assert grouping_labels('sum by (plugin, le) (rate(x{job=~"a", score="b"}[1m]))') == {
        "plugin",
        "le",
        "job",
        "score",
    }
