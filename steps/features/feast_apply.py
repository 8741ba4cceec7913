"""Step: `feast apply` of feature_repo/ (registers entity, views, FeatureService)."""

from typing import Annotated

from zenml import step

from churn.features.pipeline import apply_features


@step
def feast_apply() -> Annotated[list[str], "applied_objects"]:
    """Names of the Feast objects applied."""
    return apply_features().applied
