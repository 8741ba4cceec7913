"""Step: realized outcomes (labels that arrived after the snapshot) from a file."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.data.outcomes import read_outcomes
from churn.features.pipeline import OutcomeSource


@step
def load_outcomes(outcomes: OutcomeSource) -> Annotated[pd.DataFrame, "outcomes"]:
    """The outcome rows as the file holds them (the contract judges them next)."""
    return read_outcomes(outcomes.path)
