"""Step: the outcome contract against the offline store and the prediction log."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.data.outcomes import stored_labels, stored_snapshots
from churn.data.outcomes import validate_outcomes as validate
from churn.features.pipeline import OutcomeSource
from churn.loop import prediction_log_root
from churn.loop.predlog import read_log


@step
def validate_outcomes(
    outcomes: pd.DataFrame, source: OutcomeSource
) -> Annotated[pd.DataFrame, "validated_outcomes"]:
    """The outcomes unchanged when every rule holds (churn.data.outcomes); otherwise
    DataContractError naming the rows fails the run before anything is written."""
    return validate(
        outcomes,
        snapshots=stored_snapshots(),
        stored=stored_labels(),
        predictions=read_log(prediction_log_root(source.prediction_log_uri)),
    )
