"""Fixtures of the data tests: the Telco-format CSV's cleaned frame, real or synthetic.

`telco_df` is read from the root conftest's `telco_csv` (the real file when at hand,
else synthetic customers in the published layout), so every loader, contract and
offline-store test runs on a fresh clone. `real_telco_df` is the real file only, for
the facts of the published data (7043 rows, 1869 churners, 11 blank TotalCharges).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn.data.telco import load_telco


@pytest.fixture(scope="session")
def telco_df(telco_csv: Path) -> pd.DataFrame:
    """The cleaned Telco-format frame (session-wide: treat as read-only, copy to modify)."""
    return load_telco(telco_csv)


@pytest.fixture(scope="session")
def real_telco_df(real_telco_csv: Path) -> pd.DataFrame:
    """The cleaned real Telco frame (session-wide: treat as read-only)."""
    return load_telco(real_telco_csv)
