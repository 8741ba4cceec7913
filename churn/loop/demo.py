"""`make loop-demo`: the closed loop end to end on synthetic data with a known truth.

Stages (each a real pipeline run except the first, which writes the data):

1. snapshots: `snapshots` monthly snapshots of synthetic customers; the last one, t0,
   is "today" (this UTC day): its features are stored, its labels are not known yet;
   the earlier ones are labelled;
2. train: the training pipeline on the labels known at t0;
3. batch-score + campaign: the batch pipeline scores the customers of t0, logs every
   prediction and makes a campaign with a random control group;
4. outcomes at t1 = t0 + 1 month: the generator's true churn risk of each customer of
   t0, times the simulated relative risk for the treated arm (churn.data.synthetic.
   simulate_outcomes), ingested through the feature pipeline and the outcome contract;
5. KPI report: the business KPI pipeline as of t1 (printed as a table);
6. retrain on the new labels: the training pipeline with labels_known_by = t1; its
   promotion step puts the challenger against the champion.

Why t0 is today: the batch pipeline logs predictions at the real clock, and an
outcome must not be observed before the prediction it evaluates (churn.data.outcomes),
so the simulated month runs from today into the future and the KPI pipeline is run
"as of" t1.

State lives in <CHURN_HOME>/loop-demo (its own offline store, MLflow database,
prediction log, campaigns, reports and ZenML store), rebuilt on every run, so the
demo never touches the main demo's models. Every value comes from
configs/loop_demo.yaml and the pipelines' own YAMLs.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import yaml

from churn import console
from churn.data.synthetic import generate, simulate_outcomes
from churn.data.timestamps import add_months
from churn.runs import isolated_environment, pipeline_config, run_pipeline
from churn.settings import PROJECT_ROOT, Settings, get_settings

DEMO_CONFIG: Final = PROJECT_ROOT / "configs" / "loop_demo.yaml"
DEMO_DIR: Final = "loop-demo"


@dataclass(frozen=True)
class DemoConfig:
    """configs/loop_demo.yaml: data, simulated truth, and pipeline overrides."""

    customers: int
    snapshots: int
    seed: int
    relative_risk: float
    outcome_seed: int
    pipelines: dict[str, dict[str, Any]]


def _say(text: str) -> None:
    """One line of the demo's output (a command's output, not a log record)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def load_demo_config(path: Path = DEMO_CONFIG) -> DemoConfig:
    """The demo's YAML as a DemoConfig (unknown keys are an error)."""
    return DemoConfig(**yaml.safe_load(path.read_text(encoding="utf-8")))


def write_snapshots(config: DemoConfig, t0: datetime, settings: Settings) -> pd.DataFrame:
    """The synthetic snapshots into the offline store; t0 without labels. Returns t0's rows."""
    from churn.features.pipeline import apply_features, validate_customers, write_offline
    from churn.schema import EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT

    frame = generate(
        config.customers,
        seed=config.seed,
        n_snapshots=config.snapshots,
        start=add_months(t0, -(config.snapshots - 1)),
    )
    latest = frame[EVENT_TIMESTAMP] == frame[EVENT_TIMESTAMP].max()
    write_offline(validate_customers(frame[~latest]), settings)
    today: pd.DataFrame = frame[latest].drop(columns=[LABEL, LABEL_OBSERVED_AT])
    today = today.reset_index(drop=True)
    write_offline(validate_customers(today), settings)
    apply_features(settings)
    return today


def write_outcomes_file(
    config: DemoConfig, today: pd.DataFrame, t1: datetime, settings: Settings
) -> tuple[Path, int]:
    """Simulated outcomes of t0's customers at t1 (the latest campaign's treated arm
    with the configured relative risk) as a parquet file; its path and treated count."""
    from churn.loop.campaign import LATEST_NAME, TREATED, campaigns_root

    root = campaigns_root(settings)
    latest = yaml.safe_load((root / LATEST_NAME).read_text())["name"]
    campaign = pd.read_parquet(root / latest / "campaign.parquet")
    treated = campaign.loc[campaign["arm"] == TREATED, "customer_id"]
    outcomes = simulate_outcomes(
        today,
        treated=treated,
        relative_risk=config.relative_risk,
        seed=config.outcome_seed,
        observed_at=t1,
    )
    path = settings.home / "outcomes" / f"outcomes_{t1:%Y%m%d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    outcomes.to_parquet(path, index=False)
    return path, len(treated)


@dataclass(frozen=True)
class LoopRun:
    """The loop's stages in one home of their own (the demo's, or a test's).

    `settings` must be this home's (CHURN_HOME set in this process); `t0` is the
    snapshot predicted from, `t1` one month later, when outcomes are observed.
    """

    config: DemoConfig
    settings: Settings
    t0: datetime

    @property
    def t1(self) -> datetime:
        """When the outcomes of t0 are observed: a calendar month later."""
        return add_months(self.t0, 1)

    @property
    def env(self) -> dict[str, str]:
        """The pipelines' environment: this home and its own ZenML store."""
        return isolated_environment(self.settings.home)

    def pipeline(
        self, name: str, extra: Mapping[str, Any] | None = None, directory: Path | None = None
    ) -> float:
        """Run pipeline `name` with the demo's overrides plus `extra`; seconds taken.
        The config is written to `directory` (default <home>/configs)."""
        where = directory or self.settings.home / "configs"
        config = pipeline_config(name, self.config.pipelines.get(name, {}), where, extra or {})
        return run_pipeline(name, config, self.env)

    def snapshots(self) -> pd.DataFrame:
        """Stage 1: the synthetic snapshots in the offline store; t0's rows (unlabelled)."""
        return write_snapshots(self.config, self.t0, self.settings)

    def train(self, labels_known_by: datetime | None = None) -> float:
        """The training pipeline on the labels known by then (all when None)."""
        extra = {} if labels_known_by is None else {"labels_known_by": labels_known_by.isoformat()}
        return self.pipeline("training_pipeline", extra)

    def score(self) -> float:
        """Stage 3: the batch pipeline on t0's customers, with its campaign."""
        return self.pipeline("batch_inference_pipeline", {"snapshot_time": self.t0.isoformat()})

    def ingest(self, outcomes: Path, directory: Path | None = None) -> float:
        """Outcomes through the feature pipeline (no new snapshot, only the outcomes)."""
        extra = {"source": None, "outcomes": {"path": str(outcomes), "prediction_log_uri": None}}
        return self.pipeline("feature_pipeline", extra, directory)

    def kpis(self, extra: Mapping[str, Any] | None = None, directory: Path | None = None) -> float:
        """Stage 5: the business KPI pipeline as of t1."""
        return self.pipeline(
            "business_kpi_pipeline", {"as_of": self.t1.isoformat(), **(extra or {})}, directory
        )


def champion_lines(model_name: str, settings: Settings) -> list[str]:
    """Every registered version's held-out figures and which one is champion now."""
    from churn.loop.kpi import METRICS
    from churn.models.registry import (
        TAG_PROMOTION,
        champion_version,
        heldout_metrics,
        use_tracking,
    )

    uri = settings.tracking_uri
    client = use_tracking(uri)
    champion = champion_version(model_name, uri)
    lines = []
    versions = client.search_model_versions(f"name='{model_name}'")
    for version in sorted(versions, key=lambda v: int(v.version)):
        figures = heldout_metrics(model_name, str(version.version), METRICS, uri)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
        role = "champion" if str(version.version) == champion else "not champion"
        lines.append(f"  v{version.version} ({role}): held-out {shown}")
        if TAG_PROMOTION in version.tags:
            lines.append(f"      promotion: {version.tags[TAG_PROMOTION]}")
    return lines


def main() -> int:
    """Run the demo; print each stage's time, the KPI table and challenger vs champion."""
    from churn.loop.kpi_report import REPORT_JSON, format_kpi_table, kpi_reports_root

    console.install()
    began = time.perf_counter()
    config = load_demo_config()
    home = get_settings().home / DEMO_DIR
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["CHURN_HOME"] = str(home)
    get_settings.cache_clear()
    loop = LoopRun(
        config, get_settings(), datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    model_name = str(config.pipelines["training_pipeline"]["model_name"])

    def stage(name: str, seconds: float) -> None:
        _say(f"[{time.perf_counter() - began:6.1f} s] {name}: {seconds:.1f} s")

    _say(f"loop demo in {home}: t0 = {loop.t0.date()}, outcomes at t1 = {loop.t1.date()}")
    mark = time.perf_counter()
    today = loop.snapshots()
    stage(
        f"{config.snapshots} snapshots of {config.customers} customers", time.perf_counter() - mark
    )
    stage("train (labels known at t0)", loop.train())
    stage("batch-score t0 + campaign", loop.score())
    path, treated = write_outcomes_file(config, today, loop.t1, loop.settings)
    stage(
        f"outcomes at t1 ({treated} treated, relative risk {config.relative_risk})",
        loop.ingest(path),
    )
    stage("KPI report", loop.kpis())
    reports = sorted(p for p in kpi_reports_root(loop.settings).iterdir() if p.name[0] != ".")
    report = yaml.safe_load((reports[-1] / REPORT_JSON).read_text())
    before = champion_lines(model_name, loop.settings)
    stage("retrain on the labels known at t1", loop.train(labels_known_by=loop.t1))

    _say("\n" + format_kpi_table(report))
    _say(f"\nreport: {reports[-1] / 'report.html'}")
    _say("\nbefore retraining:\n" + "\n".join(before))
    _say("after retraining on the labels known at t1 (challenger against champion):")
    _say("\n".join(champion_lines(model_name, loop.settings)))
    _say(f"\nloop demo: {time.perf_counter() - began:.0f} s in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
