"""Step: split the training frame (stratified and seeded, or by time for snapshots)."""

from typing import Annotated

import pandas as pd
from zenml import step

from churn.models.split import SplitStrategy, split_frame


@step
def split_data(
    frame: pd.DataFrame,
    strategy: SplitStrategy,
    test_size: float,
    seed: int,
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """(train, test); the test set is held out from every choice but the final report."""
    # A tuple literal in the return statement: ZenML reads it to see two outputs.
    train, test = split_frame(frame, strategy=strategy, test_size=test_size, seed=seed)
    return train, test
