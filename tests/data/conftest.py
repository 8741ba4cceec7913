"""Fixtures of the data tests: the real Telco CSV and its cleaned frame.

The CSV lives outside the repository (it is never committed). Its location comes
from CHURN_TELCO_CSV, defaulting to the shared copy next to the repository. A
missing file fails the run loudly: these tests must never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from churn.data.telco import load_telco

DEFAULT_TELCO_CSV = (
    Path(__file__).resolve().parents[2].parent / "shared/data/WA_Fn-UseC_-Telco-Customer-Churn.csv"
)


@pytest.fixture(scope="session")
def telco_csv_path() -> Path:
    """Path of the real Telco CSV; fails (never skips) when it is missing."""
    path = Path(os.environ.get("CHURN_TELCO_CSV", str(DEFAULT_TELCO_CSV)))
    if not path.is_file():
        pytest.fail(
            f"Telco CSV not found at {path}. Set CHURN_TELCO_CSV to the path of "
            "WA_Fn-UseC_-Telco-Customer-Churn.csv (IBM Telco Customer Churn dataset).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def telco_df(telco_csv_path: Path) -> pd.DataFrame:
    """The cleaned real Telco frame (session-wide: treat as read-only, copy to modify)."""
    return load_telco(telco_csv_path)
