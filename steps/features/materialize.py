"""Step: `feast materialize` of the loaded rows' time window into Redis."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.features.pipeline import materialize_online, materialize_window


@step
def materialize(customers: pd.DataFrame) -> Annotated[list[str], "materialized_views"]:
    """Views materialized for the window that covers every loaded row."""
    return materialize_online(materialize_window(customers)).views
