"""The Grafana dashboard and the Prometheus set-up name only metrics the app exports, and scrape
the ports compose gives the app and the workers."""

from __future__ import annotations

import json
import re

import yaml

from bolt_app.telemetry import metrics
from tests.support import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "docs" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    names = {f"{metrics.PREFIX}_queue_depth", f"{metrics.PREFIX}_queue_dead_letters"}  # the worker's collector
    for family in metrics.get().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def test_the_dashboard_imports_as_is_and_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard.get("id") is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exported = exported_names()
    queried = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            expression = target["expr"]
            assert expression.count("(") == expression.count(")"), expression
            used = set(re.findall(r"\bboltapp_[a-z_]+", expression))
            assert used and used <= exported, (panel["title"], used - exported)
            queried |= used
    titles = " ".join(p["title"] for p in panels)
    for wanted in ("p50 and p99", "3 s", "Web API errors", "429", "refreshes", "Queue depth", "Jobs"):
        assert wanted in titles, wanted
    assert {"boltapp_slack_request_duration_seconds_bucket", "boltapp_queue_depth",
            "boltapp_token_refreshes_total"} <= queried


def test_prometheus_scrapes_the_app_and_the_workers_on_their_metrics_port() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    port = int(services["app"]["environment"]["METRICS_PORT"])
    assert int(services["worker"]["environment"]["METRICS_PORT"]) == port
    assert "ports" not in services["app"] and "ports" not in services["worker"]  # metrics stay inside
    prometheus = services["prometheus"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert all(published.startswith("127.0.0.1:") for published in prometheus["ports"])
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus.yml").read_text())
    scraped = {(sd["names"][0], sd["port"]) for job in config["scrape_configs"] for sd in job["dns_sd_configs"]}
    assert scraped == {("app", port), ("worker", port)}
