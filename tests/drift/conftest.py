"""Telco-format fixtures for the drift tests: features, a seeded split, a fitted detector.

The detector is fitted once per session on the training split (raw features plus the
derived ones, exactly the model's inputs); the held-out split is the "reference-like"
population that must not alarm. The CSV comes from the root conftest's `telco_csv`:
the real file when it is at hand, else synthetic customers in the same layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.data.telco import load_telco
from churn.drift import AlibiTabularDrift, fit_detector
from churn.features.derived import add_derived

TRAIN_SHARE = 0.8
SPLIT_SEED = 0


@pytest.fixture(scope="session")
def telco_features(telco_csv: Path) -> pd.DataFrame:
    """Every Telco customer with raw and derived features (schema.model_input_names())."""
    return add_derived(load_telco(telco_csv))


@pytest.fixture(scope="session")
def telco_split(telco_features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded 80/20 split: (training rows, held-out rows)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(telco_features))
    cut = int(TRAIN_SHARE * len(telco_features))
    return telco_features.iloc[order[:cut]], telco_features.iloc[order[cut:]]


@pytest.fixture(scope="session")
def detector(telco_split: tuple[pd.DataFrame, pd.DataFrame]) -> AlibiTabularDrift:
    """The default detector fitted on the training split."""
    return fit_detector(telco_split[0])
