"""Step: the pandera data contract; a violation fails the run before anything is written."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.data.contract import validate


@step
def validate_data(customers: pd.DataFrame) -> Annotated[pd.DataFrame, "validated_customers"]:
    """The frame unchanged when it meets the contract (DataContractError names the column)."""
    return validate(customers)
