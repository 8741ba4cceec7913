"""Step: the customers to score, as entity rows (customer_id, snapshot time)."""

from datetime import datetime
from typing import Annotated

import pandas as pd
from zenml import step

from churn.monitoring.snapshots import select_entities


@step
def select_customers(snapshot_time: datetime | None) -> Annotated[pd.DataFrame, "customers"]:
    """Every customer at their latest snapshot (None), or the customers of the
    snapshot taken at `snapshot_time`; see churn.monitoring.snapshots."""
    return select_entities(snapshot_time)
