"""The registry's champion (churn.models.registry): loaded in-process for what-if
scores (no pickle; the same derive() and reason ranking as serving), and its
held-out metrics and plots from MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from churn.features.derived import derive
from churn.inference import Reason
from churn.models import registry
from churn.models.reasons import feature_contributions, reason_records
from churn.models.registry import ChampionRef
from churn.models.serialize import ServingModel
from churn.schema import (
    FEATURES,
    Kind,
)
from dashboard.errors import BadInput, NoChampion, ServingFailed

# ------------------------------------------------------------------ champion model


def champion_ref(name: str, tracking_uri: str | None = None) -> ChampionRef:
    """The registry's champion (churn.models.registry.champion_ref); NoChampion when
    there is none, with what to run."""
    try:
        return registry.champion_ref(name, tracking_uri)
    except registry.NoChampionError as e:
        raise NoChampion(f"{str(e)[0].upper()}{str(e)[1:]}.") from e


@dataclass(frozen=True)
class Champion:
    """The champion's serving model, loaded in-process for what-if scores."""

    ref: ChampionRef
    model: ServingModel
    threshold: float


def load_champion(ref: ChampionRef, dst: Path, tracking_uri: str | None = None) -> Champion:
    """Download and load the champion's serving model (verified, no pickle)."""
    from churn.models.registry import load_serving_model

    model = load_serving_model(ref.name, ref.version, tracking_uri, dst)
    threshold = model.metadata.get("threshold")
    if threshold is None:
        raise ServingFailed(f"{ref.name} v{ref.version}: serving model metadata has no threshold")
    return Champion(ref=ref, model=model, threshold=float(threshold))


@dataclass(frozen=True)
class WhatIfScore:
    """An in-process score of (possibly edited) features."""

    probability: float
    label: bool
    derived: dict[str, float]
    reasons: list[Reason]


def check_features(features: Mapping[str, Any]) -> dict[str, Any]:
    """The raw features in schema order; BadInput naming a missing or out-of-domain one."""
    out: dict[str, Any] = {}
    for f in FEATURES:
        if f.name not in features or features[f.name] is None:
            raise BadInput(f"feature {f.name!r} is missing")
        value = features[f.name]
        if f.kind is Kind.CATEGORY:
            if value not in f.categories:
                raise BadInput(f"feature {f.name!r}: {value!r} is not one of {list(f.categories)}")
        else:
            number = float(value)
            if not math.isfinite(number):
                raise BadInput(f"feature {f.name!r} must be a finite number, got {value!r}")
            low = f.min_value if f.min_value is not None else -math.inf
            high = f.max_value if f.max_value is not None else math.inf
            if not low <= number <= high:
                raise BadInput(f"feature {f.name!r}: {value} is outside [{low}, {high}]")
            value = int(number) if f.kind is Kind.INT else number
        out[f.name] = value
    return out


def score_features(
    model: ServingModel, threshold: float, features: Mapping[str, Any], top_k: int = 3
) -> WhatIfScore:
    """Score one customer's raw features exactly as serving does: derive(), encode, model.

    Reason codes are aggregated to raw features with serving's own functions, so a
    what-if row with unchanged features shows the reasons the endpoint shows.
    """
    raw = check_features(features)
    columns: dict[str, Any] = {name: np.asarray([value]) for name, value in raw.items()}
    inputs = model.input_names
    columns.update(derive(columns, [name for name in inputs if name not in raw]))
    probability = float(model.predict_proba(columns)[0])
    per_feature, names = feature_contributions(model, columns)
    reasons = [Reason(**item) for item in reason_records(per_feature, names, columns, top_k)[0]]
    derived = {name: float(columns[name][0]) for name in inputs if name not in raw}
    return WhatIfScore(
        probability=probability,
        label=probability >= threshold,
        derived=derived,
        reasons=reasons,
    )


# ---------------------------------------------------------------- champion report


@dataclass(frozen=True)
class ChampionReport:
    """The champion's held-out metrics, slice metrics and plots from its MLflow run."""

    ref: ChampionRef
    model_kind: str
    metrics: dict[str, float]
    slices: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)


# Held-out metrics shown as headline numbers (names without the test_ prefix).
QUALITY_METRICS: Final = ("roc_auc", "pr_auc", "precision", "recall", "f1", "brier")
OPERATING_METRICS: Final = (
    "threshold", "flagged_rate", "business_cost_per_customer", "net_revenue_impact",
)  # fmt: skip
MONEY_METRICS: Final = frozenset({"business_cost_per_customer", "net_revenue_impact"})


def split_metrics(run_metrics: Mapping[str, float]) -> tuple[dict[str, float], pd.DataFrame]:
    """test_* metrics -> (overall metrics without the prefix, slice table).

    Slice metrics are logged as test_slice.<feature>.<value>.<metric>.
    """
    from churn.models.registry import TEST_PREFIX

    overall: dict[str, float] = {}
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in run_metrics.items():
        if not key.startswith(TEST_PREFIX):
            continue
        name = key[len(TEST_PREFIX) :]
        if name.startswith("slice."):
            parts = name.split(".")
            if len(parts) >= 4:
                feature, metric = parts[1], parts[-1]
                segment = ".".join(parts[2:-1])
                rows.setdefault((feature, segment), {})[metric] = float(value)
            continue
        overall[name] = float(value)
    slices = pd.DataFrame([{"feature": f, "segment": s, **m} for (f, s), m in sorted(rows.items())])
    return overall, slices


def champion_report(ref: ChampionRef, dst: Path, tracking_uri: str | None = None) -> ChampionReport:
    """Metrics, slices and plot PNGs (downloaded into `dst`) of the champion's run."""
    from churn.models.registry import PLOTS_ARTIFACT, TAG_MODEL_KIND, use_tracking

    client = use_tracking(tracking_uri)
    run = client.get_run(ref.run_id)
    overall, slices = split_metrics(run.data.metrics)
    plots: dict[str, Path] = {}
    artifacts = {a.path for a in client.list_artifacts(ref.run_id)}
    if PLOTS_ARTIFACT in artifacts:
        local = Path(client.download_artifacts(ref.run_id, PLOTS_ARTIFACT, str(dst)))
        plots = {p.stem: p for p in sorted(local.glob("*.png"))}
    return ChampionReport(
        ref=ref,
        model_kind=str(run.data.tags.get(TAG_MODEL_KIND, "unknown")),
        metrics=overall,
        slices=slices,
        plots=plots,
    )
