"""Fixtures of the model tests: Telco-format data, its seeded split, trained candidates.

The data is the root conftest's `telco_csv`: the real file when at hand (the tests of
published AUC floors ask for `real_telco_csv` too, so they run only then), else
synthetic customers in the same layout.

Training is the expensive part (~15-30 s on 2 cores), so the candidates are trained
once per session with churn's default grid and shared read-only by every model test.
`pipeline_candidates` are trained as the training pipeline trains them (its YAML's
feature set, grids, search, sampling and calibration; another ~40 s, only for the
tests that ask): the gates must pass for what the pipeline gates, not a stand-in.
The split uses the pipeline's default seed (configs and steps/training/split_data.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_support import CV_FOLDS, SEED, Split

from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.features.names import service_inputs, service_version
from churn.models.candidates import DEFAULT_GRID, TrainedCandidate, train_candidates
from churn.models.sampling import Sampling
from churn.models.search import SearchBudget
from churn.models.split import split_frame
from churn.schema import LABEL
from configs import pipeline_parameters


@pytest.fixture(scope="session")
def telco_frame(telco_csv: Path) -> pd.DataFrame:
    """Telco-format data with derived features (read-only: copy before editing)."""
    return add_derived(load_telco(telco_csv))


@pytest.fixture(scope="session")
def split(telco_frame: pd.DataFrame) -> Split:
    """Stratified, seeded 80/20 split of the data."""
    train, test = split_frame(telco_frame, strategy="stratified", test_size=0.2, seed=SEED)
    return Split(
        X_train=train.drop(columns=[LABEL]),
        y_train=train[LABEL].to_numpy(dtype=np.int64),
        X_test=test.drop(columns=[LABEL]),
        y_test=test[LABEL].to_numpy(dtype=np.int64),
    )


@pytest.fixture(scope="session")
def candidates(split: Split) -> dict[str, TrainedCandidate]:
    """Every family trained on the real training split with the default grid."""
    return train_candidates(
        split.X_train, split.y_train, DEFAULT_GRID, seed=SEED, cv_folds=CV_FOLDS
    )


@pytest.fixture(scope="session")
def pipeline_candidates(split: Split) -> dict[str, TrainedCandidate]:
    """Every family trained with configs/training_pipeline.yaml's feature set, grids,
    search, sampling and calibration. The search's clock is lifted so that its trial
    count alone decides (as the YAML intends): the same trials on any machine, however
    loaded."""
    training = pipeline_parameters("training_pipeline")
    search = {**training["search"], "timeout_s": 3600.0}
    service = training["feature_service"]
    return train_candidates(
        split.X_train[service_inputs(service)],
        split.y_train,
        training["param_grid"],
        seed=SEED,
        cv_folds=training["cv_folds"],
        search=SearchBudget(**search),
        sampling=Sampling(**training["sampling"]),
        calibration=training["calibration"],
        feature_version=service_version(service),
    )
