"""What the deploy tests compare the files against: the settings and metrics the code defines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase
from pydantic import AliasChoices

from opencomputer.bot.config import Settings
from opencomputer.bot.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def load_yaml_documents(path: Path) -> list[Any]:
    """Every non-empty document of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def setting_names() -> set[str]:
    """Environment variable names opencomputer reads."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper())
    return names


def exported_series() -> dict[str, set[str]]:
    """Series name -> label names, for every series ``/metrics`` can export."""
    series: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = set(metric._labelnames)  # no public accessor; stable across releases
        for family in metric.describe():
            for suffix in _SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                series[family.name + suffix] = labels | extra
    return series


def exported_families() -> set[str]:
    """Metric family names (``oc_turns`` for the series ``oc_turns_total``)."""
    return {
        family.name
        for metric in vars(Metrics()).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    }


METRIC = re.compile(r"\b(oc_[a-z0-9_]+)\b")


def metric_names(expr: str) -> set[str]:
    """The ``oc_*`` series a PromQL expression reads."""
    return set(METRIC.findall(expr))


def grouping_labels(expr: str) -> set[str]:
    """Label names a PromQL expression groups by or matches on."""
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {part.strip() for part in group.split(",") if part.strip()}
    for matcher in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", matcher))
    return labels
