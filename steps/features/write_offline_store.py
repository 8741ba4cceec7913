"""Step: merge validated customers into the parquet offline store (idempotent)."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.features.pipeline import write_offline


@step
def write_offline_store(customers: pd.DataFrame) -> Annotated[dict[str, int], "offline_rows"]:
    """Rows per offline table after the merge."""
    return dict(write_offline(customers).rows)
