"""Step: a batch run's predictions -> a retention campaign with a random control group."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.files import stamp
from churn.loop.campaign import CampaignRule, build_campaign, contact_list, write_campaign


@step
def assign_campaign(
    predictions: pd.DataFrame, scoring: dict[str, Any], campaign: dict[str, Any]
) -> Annotated[dict[str, Any], "campaign_summary"]:
    """Targets by the budget rule, a seeded risk-stratified control group held out, the
    treated arm's contact list (CSV with reasons); see churn.loop.campaign.

    `campaign` is the YAML's campaign block less `enabled` (the pipeline's switch).
    """
    rule = CampaignRule(**{k: v for k, v in campaign.items() if k != "enabled"})
    now = datetime.now(UTC)
    campaign_id = f"cmp-{stamp(now)}-{uuid.uuid4().hex[:6]}"
    table = build_campaign(predictions, rule, campaign_id=campaign_id, assigned_at=now)
    summary = write_campaign(table, contact_list(table, predictions), rule).to_dict()
    summary["scored_by"] = scoring["model_version"]
    log_metadata(metadata={"campaign_summary": summary})
    return summary
