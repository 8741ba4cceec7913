"""Retention campaigns from a batch-scoring run, with a random control group.

Why a control group: churn among contacted customers says nothing about the offer by
itself (the model picked people likely to leave). Holding a random share of the
targets out of the contact list, and comparing their realized churn with the treated
arm's, measures what contacting them changed. Randomisation must be:

- seeded: the same run and seed give the same arms (an audit can recompute them);
- independent of row order: within a stratum customers are sorted by id before the
  shuffle, so a reordered input gives the same assignment;
- stratified by risk decile: each decile of the scored population contributes its
  own share to control, so both arms have the same risk mix even for a small
  campaign (an unlucky draw cannot put the riskiest customers in one arm).

Targets come from a budget rule (CampaignRule): the `top_n` customers by expected
loss (a fixed number of contacts the team can afford), or every customer with
probability >= `min_probability`. The control share is taken from the targets, so
the contact list has about (1 - control_share) x targets rows.

Output (write_campaign): <root>/<UTC time>_<campaign id>/ with campaign.parquet (one
row per target: campaign id, customer, arm, model version, probability, expected
loss, risk decile, assigned_at), contacts.csv (the treated arm only, ranked by
expected loss, with the top reasons from churn.models.reasons as the batch run
computed them) and summary.json; <root>/latest.json names the newest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.files import publish_dir, stamp, write_json_atomic
from churn.schema import ENTITY_KEY
from churn.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TREATED: Final = "treated"
CONTROL: Final = "control"
CAMPAIGN_NAME: Final = "campaign.parquet"
CONTACTS_NAME: Final = "contacts.csv"
SUMMARY_NAME: Final = "summary.json"
LATEST_NAME: Final = "latest.json"
CAMPAIGN_COLUMNS: Final = (
    "campaign_id",
    ENTITY_KEY,
    "arm",
    "model_version",
    "churn_probability",
    "expected_loss",
    "risk_decile",
    "assigned_at",
)
PROBABILITY: Final = "churn_probability"
LOSS: Final = "expected_loss"

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CampaignRule:
    """Who is targeted and how many are held out (configs/batch_inference_pipeline.yaml)."""

    kind: Literal["top_n", "threshold"]
    top_n: int | None
    min_probability: float | None
    control_share: float
    seed: int
    strata: int

    def __post_init__(self) -> None:
        if self.kind == "top_n" and (self.top_n is None or self.top_n < 1):
            raise ValueError(f"rule top_n needs top_n >= 1, got {self.top_n}")
        if self.kind == "threshold" and not (
            self.min_probability is not None and 0.0 <= self.min_probability <= 1.0
        ):
            raise ValueError(
                f"rule threshold needs min_probability in [0, 1], got {self.min_probability}"
            )
        if self.kind not in ("top_n", "threshold"):
            raise ValueError(f"unknown campaign rule {self.kind!r} (top_n or threshold)")
        if not 0.0 < self.control_share < 1.0:
            raise ValueError(f"control_share must be in (0, 1), got {self.control_share}")
        if self.strata < 1:
            raise ValueError(f"strata must be >= 1, got {self.strata}")


def risk_deciles(probabilities: Any, strata: int) -> IntArray:
    """1..strata per row, `strata` = riskiest, by rank within the whole scored run.

    Ranks (ties broken by position, which callers make deterministic) give strata of
    equal size even when many probabilities tie.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    out: IntArray = (ranks * strata // n + 1).astype(np.int64)
    return out


def select_targets(predictions: pd.DataFrame, rule: CampaignRule) -> pd.DataFrame:
    """The rows the budget rule targets, highest expected loss first."""
    ordered = predictions.sort_values(
        [LOSS, PROBABILITY, ENTITY_KEY], ascending=[False, False, True], kind="stable"
    )
    if rule.kind == "top_n":
        assert rule.top_n is not None  # checked in CampaignRule
        return ordered.head(rule.top_n)
    assert rule.min_probability is not None
    return ordered[ordered[PROBABILITY] >= rule.min_probability]


def assign_arms(
    customer_ids: Any, strata: Any, control_share: float, seed: int
) -> npt.NDArray[np.object_]:
    """ "treated" / "control" per row: round(share x n) controls drawn in each stratum.

    Deterministic in (ids, strata, share, seed), whatever the row order.
    """
    ids = np.asarray(customer_ids, dtype=object).astype(str)
    groups = np.asarray(strata)
    arms = np.full(len(ids), TREATED, dtype=object)
    rng = np.random.default_rng(seed)
    for stratum in np.unique(groups).tolist():
        members = np.flatnonzero(groups == stratum)
        members = members[np.argsort(ids[members], kind="stable")]
        n_control = int(np.floor(control_share * len(members) + 0.5))  # half up
        arms[rng.permutation(members)[:n_control]] = CONTROL
    return arms


def build_campaign(
    predictions: pd.DataFrame,
    rule: CampaignRule,
    *,
    campaign_id: str,
    assigned_at: datetime,
) -> pd.DataFrame:
    """The campaign table (CAMPAIGN_COLUMNS) of one batch run's ranked predictions."""
    missing = [c for c in (ENTITY_KEY, PROBABILITY, LOSS, "model_version") if c not in predictions]
    if missing:
        raise KeyError(f"predictions lack column(s) {missing}")
    if predictions[ENTITY_KEY].duplicated().any():
        raise ValueError("predictions name a customer twice: one campaign row per customer")
    ordered = predictions.sort_values(ENTITY_KEY, kind="stable").reset_index(drop=True)
    deciles = pd.Series(risk_deciles(ordered[PROBABILITY], rule.strata), index=ordered.index)
    targets = select_targets(ordered, rule)
    if targets.empty:
        raise ValueError(f"the rule {rule.kind} targets no customer")
    arms = assign_arms(targets[ENTITY_KEY], deciles[targets.index], rule.control_share, rule.seed)
    return pd.DataFrame(
        {
            "campaign_id": campaign_id,
            ENTITY_KEY: targets[ENTITY_KEY].astype(str).to_numpy(),
            "arm": arms,
            "model_version": targets["model_version"].astype(str).to_numpy(),
            PROBABILITY: targets[PROBABILITY].to_numpy(np.float64),
            LOSS: targets[LOSS].to_numpy(np.float64),
            "risk_decile": deciles[targets.index].to_numpy(np.int64),
            "assigned_at": pd.Timestamp(assigned_at).tz_convert(UTC),
        },
        columns=list(CAMPAIGN_COLUMNS),
    ).reset_index(drop=True)


def contact_list(campaign: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The treated arm, ranked by expected loss, with each customer's top reasons.

    The reasons are the batch run's (reason_k, reason_k_value from churn.models.reasons);
    a run scored without reasons cannot make a contact list a marketer can act on.
    """
    reasons = [
        c
        for c in predictions.columns
        if c.startswith("reason_") and not c.endswith("_contribution")
    ]
    if not reasons:
        raise ValueError("the batch run has no reason columns (scored with top_k 0)")
    extra = [c for c in ("monthly_charges", *reasons) if c in predictions]
    treated = campaign[campaign["arm"] == TREATED]
    merged = treated.merge(predictions[[ENTITY_KEY, *extra]], on=ENTITY_KEY, how="left")
    merged = merged.sort_values([LOSS, ENTITY_KEY], ascending=[False, True], kind="stable")
    merged.insert(0, "contact_rank", np.arange(1, len(merged) + 1, dtype=np.int64))
    columns = ["contact_rank", "campaign_id", ENTITY_KEY, PROBABILITY, LOSS, *extra]
    return merged[columns].reset_index(drop=True)


@dataclass(frozen=True)
class CampaignSummary:
    """What one campaign holds and where it was written."""

    campaign_id: str
    targets: int
    treated: int
    control: int
    control_share: float
    rule: str
    model_version: str
    expected_loss_treated: float
    expected_loss_control: float
    path: str
    campaign: str
    contacts: str
    assigned_at: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (summary.json, ZenML metadata)."""
        return asdict(self)


def campaigns_root(settings: Settings | None = None) -> Path:
    """<CHURN_HOME>/campaigns: one directory per campaign."""
    return (settings or get_settings()).home / "campaigns"


def write_campaign(
    campaign: pd.DataFrame,
    contacts: pd.DataFrame,
    rule: CampaignRule,
    *,
    root: Path | None = None,
) -> CampaignSummary:
    """Publish campaign.parquet + contacts.csv + summary.json atomically; latest.json after."""
    root = root if root is not None else campaigns_root()
    campaign_id = str(campaign["campaign_id"].iloc[0])
    assigned_at = pd.Timestamp(campaign["assigned_at"].iloc[0]).to_pydatetime()
    is_treated = (campaign["arm"] == TREATED).to_numpy()
    loss = campaign[LOSS].to_numpy(np.float64)
    fields: dict[str, Any] = {
        "campaign_id": campaign_id,
        "targets": len(campaign),
        "treated": int(is_treated.sum()),
        "control": int((~is_treated).sum()),
        "control_share": float((~is_treated).mean()),
        "rule": rule.kind,
        "model_version": str(campaign["model_version"].iloc[0]),
        "expected_loss_treated": float(loss[is_treated].sum()),
        "expected_loss_control": float(loss[~is_treated].sum()),
        "assigned_at": assigned_at.astimezone(UTC).isoformat(),
    }

    def fill(tmp: Path) -> None:
        campaign.to_parquet(tmp / CAMPAIGN_NAME, index=False)
        contacts.to_csv(tmp / CONTACTS_NAME, index=False)
        write_json_atomic(tmp / SUMMARY_NAME, {**fields, "rule_settings": asdict(rule)})

    target = publish_dir(root, f"{stamp(assigned_at)}_{campaign_id}", fill)
    write_json_atomic(root / LATEST_NAME, {"name": target.name, "campaign_id": campaign_id})
    summary = CampaignSummary(
        **fields,
        path=str(target),
        campaign=str(target / CAMPAIGN_NAME),
        contacts=str(target / CONTACTS_NAME),
    )
    logger.info(
        "campaign %s: %d targets, %d to contact, %d held out as control; contact list %s",
        campaign_id, summary.targets, summary.treated, summary.control, summary.contacts,
    )  # fmt: skip
    return summary


def read_campaigns(root: Path | None = None) -> pd.DataFrame:
    """Every published campaign's table under `root` (CAMPAIGN_COLUMNS), oldest first.

    Hidden staging directories are skipped; no campaign yet gives an empty frame.
    """
    root = root if root is not None else campaigns_root()
    paths = sorted(root.glob(f"[!.]*/{CAMPAIGN_NAME}")) if root.is_dir() else []
    if not paths:
        return pd.DataFrame({column: [] for column in CAMPAIGN_COLUMNS})
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
