"""Step: the labels table as the entity dataframe of a point-in-time training set."""

from datetime import datetime
from typing import Annotated

import pandas as pd
from zenml import step

from churn.data.offline import read_offline_table
from churn.schema import LABEL_OBSERVED_AT


@step
def load_entity_df(labels_known_by: datetime | None = None) -> Annotated[pd.DataFrame, "entity_df"]:
    """Label rows known by `labels_known_by` (all if None), with their timestamps.

    Filtering on label_observed_at keeps labels that did not exist yet at the
    cut-off out of a backfilled training set.
    """
    labels = read_offline_table("labels")
    if labels_known_by is not None:
        labels = labels[labels[LABEL_OBSERVED_AT] <= pd.Timestamp(labels_known_by)]
    return labels.reset_index(drop=True)
