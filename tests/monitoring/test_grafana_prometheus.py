"""The Grafana dashboard and the Prometheus rules only query series the server really exports.

No promtool: every PromQL expression (dashboard targets, template queries, alert
rules) is tokenized here; each metric selector must name a series present in the
/metrics text of a REAL MLServer serving the churn runtime (started on the real Telco
features in a real Redis, then sent real traffic: a batch that completes drift
windows, an unknown id, a bad request, and a request while Redis is stopped, so
the error series exist too). Label matchers must match at least one exported sample,
grouping and legend labels must exist on the selected series, alert annotations may
only use labels that survive the expression's aggregation, and histogram_quantile
must aggregate by `le`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

# Shared with the dashboard tests: the real stack (Redis, Feast, MLServer).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from stack_support import Stack, running_stack

from churn import redis_local
from churn.settings import PROJECT_ROOT
from serving.settings import ServingSettings

pytestmark = pytest.mark.integration

MONITORING = PROJECT_ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana").glob("*.json"))
PROMETHEUS_YML = MONITORING / "prometheus" / "prometheus.yml"
RULE_FILES = sorted(p for p in (MONITORING / "prometheus").glob("*.yml") if p != PROMETHEUS_YML)
MODEL = "churn"
# Grafana's variables, replaced by what they stand for before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$model": MODEL}
# Series Prometheus makes itself for every target (never in /metrics): name -> labels.
SYNTHETIC = {"up": {"job", "instance"}, "scrape_duration_seconds": {"job", "instance"}}

# PromQL functions and aggregations the documents may use (Grafana's label_values too).
# fmt: off
FUNCTIONS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "rate", "irate", "increase", "delta", "idelta", "deriv",
    "predict_linear", "histogram_quantile", "clamp", "clamp_min", "clamp_max", "abs", "absent",
    "absent_over_time", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "quantile_over_time", "changes", "resets", "time",
    "timestamp", "vector", "scalar", "label_replace", "label_join", "round", "ceil", "floor",
    "ln", "log2", "log10", "exp", "sqrt", "sort", "sort_desc", "label_values",
})
# fmt: on
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      |(?P<matchers>\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})
      |(?P<range>\[[^\]]*\])
      |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.VERBOSE,
)
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Selector:
    """One vector selector: metric name and label matchers (label, op, value)."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Parsed:
    """What an expression selects, and the label lists of its grouping clauses."""

    selectors: list[Selector]
    grouping: list[tuple[str, list[str]]]
    aggregated: bool


def _matchers(block: str) -> tuple[tuple[str, str, str], ...]:
    inner = block[1:-1].strip()
    out = []
    pos = 0
    while pos < len(inner):
        m = MATCHER.match(inner, pos)
        assert m, f"unparsable label matchers {block!r} at {inner[pos:]!r}"
        out.append((m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    return tuple(out)


def parse_promql(expr: str) -> Parsed:
    """Selectors and grouping clauses of a PromQL expression (a tokenizer, not a full parser)."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in re.sub(r'"[^"]*"', "", expr), f"unknown variable in {expr!r}"
    assert expr.count("(") == expr.count(")"), f"unbalanced parentheses: {expr!r}"
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr) if m.lastgroup != "space"]
    selectors: list[Selector] = []
    grouping: list[tuple[str, list[str]]] = []
    aggregated = False
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in GROUPING:
            assert nxt[1] == "(", f"{text} without a label list in {expr!r}"
            j = i + 2
            labels = []
            while tokens[j][1] != ")":
                if tokens[j][0] == "ident":
                    labels.append(tokens[j][1])
                j += 1
            grouping.append((text, labels))
            i = j + 1
            continue
        if kind == "ident" and (nxt[1] == "(" or nxt[1] in GROUPING):
            assert text in FUNCTIONS, f"unknown PromQL function {text!r} in {expr!r}"
            aggregated |= text in {"sum", "min", "max", "avg", "count", "histogram_quantile"}
        elif kind == "ident" and text not in KEYWORDS:
            block = nxt[1] if nxt[0] == "matchers" else "{}"
            selectors.append(Selector(text, _matchers(block)))
        i += 1
    assert selectors, f"no metric selector in {expr!r}"
    return Parsed(selectors, grouping, aggregated)


# ------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Exported:
    """Samples of the server's /metrics: name -> label sets."""

    samples: dict[str, list[dict[str, str]]]
    values: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        """The value of the sample `name` with exactly `labels`."""
        key = (name, frozenset(labels.items()))
        if key not in self.values:
            pytest.fail(f"the server exports no sample {name}{labels}", pytrace=False)
        return self.values[key]

    def labels_of(self, selector: Selector) -> list[dict[str, str]]:
        """Label sets of the samples `selector` matches (AssertionError if none)."""
        if selector.name in SYNTHETIC:
            return [dict.fromkeys(SYNTHETIC[selector.name], "")]
        if selector.name not in self.samples:
            exported = sorted(n for n in self.samples if n.startswith("churn_"))
            pytest.fail(
                f"metric {selector.name!r} is not exported by the server; exported churn "
                f"series: {exported}",
                pytrace=False,
            )
        rows = self.samples[selector.name]
        for label, _, _ in selector.matchers:
            assert any(label in row for row in rows), (
                f"{selector.name} has no label {label!r}; labels: {sorted(set().union(*rows))}"
            )
        hits = [row for row in rows if all(_match(row, m) for m in selector.matchers)]
        assert hits, f"no exported {selector.name} sample matches {selector.matchers}: {rows}"
        return hits


def _match(row: dict[str, str], matcher: tuple[str, str, str]) -> bool:
    label, op, value = matcher
    actual = row.get(label, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = re.fullmatch(value, actual) is not None
    return found if op == "=~" else not found


def _infer(stack: Stack, ids: list[str]) -> requests.Response:
    body = {
        "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [len(ids)], "data": ids}]
    }
    return requests.post(f"{stack.url}/v2/models/{MODEL}/infer", json=body, timeout=30)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, telco_csv: Path) -> Iterator[Exported]:
    """The /metrics of a real server after ok, 404, 400 and 503 traffic."""
    home = tmp_path_factory.mktemp("monitoring_home")
    with running_stack(home, telco_csv, registry=False) as stack:
        assert _infer(stack, stack.customer_ids[:200]).status_code == 200
        for cid in stack.customer_ids[200:210]:
            assert _infer(stack, [cid]).status_code == 200
        assert _infer(stack, ["no-such-customer"]).status_code == 404
        bad = requests.post(
            f"{stack.url}/v2/models/{MODEL}/infer",
            json={"inputs": [{"name": "wrong", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
            timeout=30,
        )
        assert bad.status_code == 400
        redis_local.stop(stack.redis)  # a real 503: the online store is gone
        assert _infer(stack, stack.customer_ids[:1]).status_code == 503
        text = requests.get(stack.metrics_url, timeout=10).text
    samples: dict[str, list[dict[str, str]]] = {}
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    yield Exported(samples, values)


# ------------------------------------------------------------------- documents


def _dashboard(path: Path) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(path.read_text())
    return content


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) of every query in the dashboard."""
    return [
        (p["title"], t["expr"], t.get("legendFormat", ""))
        for p in _panels(dashboard)
        for t in p.get("targets", [])
    ]


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        content = yaml.safe_load(path.read_text())
        for group in content["groups"]:
            assert group["name"] and group["rules"], f"{path}: empty group"
            rules.extend(group["rules"])
    return rules


def test_files_exist_and_parse() -> None:
    assert DASHBOARDS, "no Grafana dashboard JSON under monitoring/grafana"
    assert RULE_FILES, "no Prometheus rule file under monitoring/prometheus"
    for path in DASHBOARDS:
        dashboard = _dashboard(path)
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert _rules()


def test_dashboard_layout_is_valid() -> None:
    for path in DASHBOARDS:
        dashboard = _dashboard(path)
        panels = _panels(dashboard)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for p in panels:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
            area = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & area, f"{path.name}: panel {p['title']!r} overlaps another"
            cells |= area
            if p["type"] != "row":
                assert p["datasource"]["uid"] == "${datasource}", p["title"]
                refs = [t["refId"] for t in p["targets"]]
                assert refs and len(refs) == len(set(refs)), p["title"]


def test_dashboard_covers_what_operators_need() -> None:
    exprs = " ".join(e for path in DASHBOARDS for _, e, _ in _targets(_dashboard(path)))
    for needed in (
        "churn_serving_requests_total",  # request rate, error rate
        "histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
        "churn_serving_stage_seconds_bucket",  # latency from the histogram
        "churn_serving_unknown_ids_total",
        "churn_serving_feature_age_seconds_bucket",
        "churn_serving_drift_feature_p_value",
        "churn_serving_predicted_churn_total",  # predicted churn rate
    ):  # fmt: skip
        assert needed in exprs, f"no dashboard query uses {needed}"


def test_every_dashboard_query_selects_exported_series(exported: Exported) -> None:
    checked = 0
    for path in DASHBOARDS:
        dashboard = _dashboard(path)
        for title, expr, legend in _targets(dashboard):
            parsed = parse_promql(expr)
            rows = [row for s in parsed.selectors for row in exported.labels_of(s)]
            available = set().union(*rows)
            for clause, labels in parsed.grouping:
                assert set(labels) <= available, f"{title}: {clause} {labels} not in {available}"
            wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
            if parsed.aggregated:
                kept = {label for clause, ls in parsed.grouping if clause == "by" for label in ls}
                assert wanted <= kept, f"{title}: legend {wanted} lost by aggregation ({kept})"
            else:
                assert wanted <= available, f"{title}: legend {wanted} not in {available}"
            if "histogram_quantile" in expr:
                assert any("le" in ls for _, ls in parsed.grouping), f"{title}: no 'by (le)'"
                assert all(s.name.endswith("_bucket") for s in parsed.selectors), title
            checked += 1
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]
                query = query["query"] if isinstance(query, dict) else query
                m = re.fullmatch(r"label_values\((\w+)(\{[^}]*\})?,\s*(\w+)\)", query)
                assert m, f"template {variable['name']}: unsupported query {query!r}"
                selector = Selector(m.group(1), _matchers(m.group(2) or "{}"))
                assert m.group(3) in set().union(*exported.labels_of(selector))
    assert checked >= 15


def test_every_alert_selects_exported_series_and_keeps_its_labels(exported: Exported) -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        parsed = parse_promql(rule["expr"])
        rows = [row for s in parsed.selectors for row in exported.labels_of(s)]
        available = set().union(*rows)
        for clause, labels in parsed.grouping:
            assert set(labels) <= available, f"{rule['alert']}: {clause} {labels}"
        if parsed.aggregated:
            kept = set.intersection(
                *[set(ls) for clause, ls in parsed.grouping if clause == "by"] or [set()]
            )
        else:
            kept = available
        text = json.dumps(rule.get("annotations", {}))
        used = set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= kept, f"{rule['alert']}: annotations use {used - kept}, lost by aggregation"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


def test_the_traffic_shows_up_in_the_series_the_panels_divide(exported: Exported) -> None:
    """The ratios the dashboard plots have non-trivial numerators and denominators."""
    scored = exported.value("churn_serving_customers_scored_total", model=MODEL)
    assert scored == 210  # one batch of 200 + 10 single-customer requests
    churners = exported.value("churn_serving_predicted_churn_total", model=MODEL)
    assert 0 < churners < scored  # real Telco customers at threshold 0.35: some, not all
    assert exported.value("churn_serving_unknown_ids_total", model=MODEL) == 1
    outcome = "churn_serving_requests_total"
    assert exported.value(outcome, model=MODEL, outcome="ok") == 11
    assert exported.value(outcome, model=MODEL, outcome="unknown_customer") == 1
    assert exported.value(outcome, model=MODEL, outcome="bad_request") == 1
    assert exported.value(outcome, model=MODEL, outcome="store_unavailable") == 1
    assert (
        exported.value("churn_serving_drift_windows_total", model=MODEL, result="no_drift")
        + (exported.value("churn_serving_drift_windows_total", model=MODEL, result="drift"))
        >= 1
    )


def test_alerts_cover_slo_errors_drift_and_stale_features() -> None:
    exprs = {r["alert"]: r["expr"] for r in _rules()}
    joined = " ".join(exprs.values())
    assert 'churn_serving_stage_seconds_bucket{stage="total"}' in joined  # latency SLO
    assert "store_unavailable" in joined and "churn_serving_requests_total" in joined
    assert "churn_serving_drift_windows_total" in joined
    assert "churn_serving_feature_age_seconds_bucket" in joined


def test_scrape_config_targets_the_serving_metrics_port_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["churn-mlserver"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    default_port = ServingSettings.model_fields["metrics_port"].default
    assert any(t.endswith(f":{default_port}") for t in targets), targets
    assert job.get("metrics_path", "/metrics") == "/metrics"
    loaded = {(PROMETHEUS_YML.parent / f).resolve() for f in config["rule_files"]}
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_the_down_alert_watches_every_job_that_scrapes_mlserver() -> None:
    """Local config, docker-compose's Prometheus and the k8s ServiceMonitor's job."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker" / "prometheus.yml").read_text())
    mlserver_jobs = {
        job["job_name"]
        for config in (yaml.safe_load(PROMETHEUS_YML.read_text()), compose)
        for job in config["scrape_configs"]
        if job["job_name"] != "prometheus"
    }
    # A ServiceMonitor's job label is the name of the Service it selects.
    k8s = list(yaml.safe_load_all((PROJECT_ROOT / "k8s/base/serving-v2/metrics.yaml").read_text()))
    (monitor,) = [o for o in k8s if o["kind"] == "ServiceMonitor"]
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    mlserver_jobs |= {
        o["metadata"]["name"]
        for o in k8s
        if o["kind"] == "Service" and wanted <= o["metadata"]["labels"].items()
    }
    down = [r for r in _rules() if r["expr"].startswith("up{")]
    assert len(down) == 1
    (selector,) = parse_promql(down[0]["expr"]).selectors
    (matcher,) = [m for m in selector.matchers if m[0] == "job"]
    assert all(_match({"job": job}, matcher) for job in mlserver_jobs), (matcher, mlserver_jobs)


def test_the_tokenizer_finds_metrics_and_rejects_unknown_functions() -> None:
    parsed = parse_promql(
        'histogram_quantile(0.99, sum by (le, stage) (rate(a_bucket{model="$model",'
        'stage=~"x|y"}[$__rate_interval]))) / clamp_min(sum(rate(b_total[5m])), 1e-9)'
    )
    assert [s.name for s in parsed.selectors] == ["a_bucket", "b_total"]
    assert parsed.selectors[0].matchers == (("model", "=", MODEL), ("stage", "=~", "x|y"))
    assert parsed.grouping == [("by", ["le", "stage"])]
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        parse_promql("ratee(a_total[5m])")
