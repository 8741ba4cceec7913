"""Step: the labels table as the entity dataframe of a point-in-time training set."""

from datetime import datetime
from typing import Annotated

import pandas as pd
from zenml import step

from churn.data.offline import LABELS_TABLE, read_offline_table
from churn.data.timestamps import as_utc
from churn.schema import LABEL_OBSERVED_AT


def labels_known_by(labels: pd.DataFrame, cutoff: datetime | None) -> pd.DataFrame:
    """Label rows observed at or before `cutoff` (all rows if None), with a fresh index.

    A label is only known once it has been observed (label_observed_at, e.g. a month
    after the snapshot): a training set backfilled "as of" a past date must not use
    labels that did not exist yet on that date. The boundary is inclusive (a label
    observed exactly at the cut-off was known). `cutoff` must be timezone-aware: a
    naive one would be compared in an unknown zone and shift the cut-off by hours.
    """
    if LABEL_OBSERVED_AT not in labels.columns:
        raise KeyError(f"labels lack column {LABEL_OBSERVED_AT!r}: not a labels table")
    if cutoff is None:
        return labels.reset_index(drop=True)
    observed = labels[LABEL_OBSERVED_AT]
    if not isinstance(observed.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"labels.{LABEL_OBSERVED_AT} must be timezone-aware, got {observed.dtype}")
    moment = pd.Timestamp(as_utc(cutoff, what="labels_known_by cut-off"))
    return labels[observed <= moment].reset_index(drop=True)


@step
def load_entity_df(cutoff: datetime | None = None) -> Annotated[pd.DataFrame, "entity_df"]:
    """The labels table, only the labels known by `cutoff` (the pipeline's
    labels_known_by; all labels if None): see labels_known_by()."""
    return labels_known_by(read_offline_table(LABELS_TABLE), cutoff)
