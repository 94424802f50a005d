"""The example alert rules (promtool is not available here: parsed and checked instead)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from auditline.metrics import Metrics

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def exported_names() -> set[str]:
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in _SUFFIXES[family.type]
    }


def test_every_alert_rule_is_complete_and_names_only_exported_metrics() -> None:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    exported = exported_names()
    assert "auditline_http_request_duration_seconds_bucket" in exported  # the check can fail
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Auditline[A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), rule["alert"]
        named = set(re.findall(r"\bauditline_[a-z0-9_]+", expr))
        assert named or expr.startswith("up{"), rule["alert"]
        assert named <= exported, (rule["alert"], named - exported)
