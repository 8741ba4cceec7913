"""Step: load customers (Telco CSV or synthetic) with event timestamps."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.features.pipeline import DataSource, load_customers


@step
def load_data(source: DataSource) -> Annotated[pd.DataFrame, "customers"]:
    """Customers from the configured source (configs/*.yaml: parameters.source)."""
    return load_customers(source)
