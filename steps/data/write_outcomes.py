"""Step: validated outcomes into the offline store's labels table (idempotent, atomic)."""

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from churn.data.offline import LABELS_TABLE, write_labels


@step
def write_outcomes(outcomes: pd.DataFrame) -> Annotated[dict[str, int], "label_rows"]:
    """Rows of the labels table after the merge and rows this run added or replaced."""
    result = write_labels(outcomes)
    summary = {"rows": result.rows[LABELS_TABLE], "changed": result.changed[LABELS_TABLE]}
    log_metadata(metadata={"outcomes": {**summary, "received": len(outcomes)}})
    return summary
