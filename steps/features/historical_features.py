"""Step: point-in-time correct features of the FeatureService for each label row."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.features.store import get_store, historical_features


@step
def get_historical_features(
    entity_df: pd.DataFrame, feature_service: str
) -> Annotated[pd.DataFrame, "training_frame"]:
    """Exactly one row per entity row (MissingFeatureRowsError otherwise), label kept."""
    return historical_features(get_store(), entity_df, service=feature_service)
