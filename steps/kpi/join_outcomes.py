"""Step: predictions and campaign targets joined to their realized outcomes and segments."""

from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.data.outcomes import stored_labels
from churn.features.store import get_store
from churn.loop import prediction_log_root
from churn.loop.campaign import read_campaigns
from churn.loop.kpi import (
    FEATURE_EVENT_TIME,
    Window,
    campaign_outcomes,
    evaluable_predictions,
    feature_keys,
    with_features,
)
from churn.loop.predlog import read_log
from churn.monitoring.snapshots import read_features
from churn.schema import EVENT_TIMESTAMP


@step
def join_outcomes(
    as_of: datetime | None,
    predictions_since: datetime | None,
    horizon_months: int,
    period_format: str,
    prediction_log_uri: str | None,
    chunk_size: int,
) -> tuple[
    Annotated[pd.DataFrame, "evaluated"],
    Annotated[pd.DataFrame, "targeted"],
    Annotated[pd.DataFrame, "outcomes"],
    Annotated[dict[str, Any], "evaluation_window"],
]:
    """Evaluated predictions, evaluated campaign targets (both with the segment inputs
    read from Feast as of their snapshot), the labels table, and the window used.

    `as_of` None: now. See churn.loop.kpi for the join rules.
    """
    window = Window(
        as_of=as_of or datetime.now(UTC), horizon_months=horizon_months, since=predictions_since
    )
    outcomes = stored_labels()
    log = read_log(prediction_log_root(prediction_log_uri))
    evaluated, counts = evaluable_predictions(log, outcomes, window, period_format)
    targeted = campaign_outcomes(read_campaigns(), outcomes, window)
    keys = feature_keys(evaluated, targeted)
    if len(keys):
        features = read_features(get_store(), keys, chunk_size=chunk_size)
        evaluated = with_features(evaluated, features, FEATURE_EVENT_TIME)
        targeted = with_features(targeted, features, EVENT_TIMESTAMP)
    context = {
        "as_of": window.as_of.isoformat(),
        "horizon_months": horizon_months,
        "predictions_since": None if predictions_since is None else predictions_since.isoformat(),
        "counts": counts,
    }
    return evaluated, targeted, outcomes, context
