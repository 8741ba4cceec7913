"""Content fingerprints of data frames, to know whether two scores are comparable.

Two models' held-out metrics may be compared only if they were measured on the same
rows; the registry stores this fingerprint with every run and re-scores the champion
when the fingerprints differ. The digest depends on the column names, dtypes and
values, and on nothing else: not on row order, index, or file format (it hashes
values with pandas.util.hash_pandas_object, not parquet/CSV bytes).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from churn.schema import LABEL


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 hex of the frame's content, invariant to row order and index.

    Columns are taken in sorted-name order; each row is hashed to a uint64 and the
    sorted row hashes are digested together with the column names and dtypes, so
    reordering rows or columns gives the same fingerprint and changing any value,
    name or dtype gives another.
    """
    columns = sorted(str(c) for c in frame.columns)
    if len(set(columns)) != len(columns):
        raise ValueError("cannot fingerprint a frame with duplicate column names")
    ordered = frame.rename(columns=str)[columns]
    row_hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256()
    for name in columns:
        digest.update(f"{name}:{ordered[name].dtype}\n".encode())
    digest.update(np.sort(row_hashes).tobytes())
    return digest.hexdigest()


def evaluation_fingerprint(X: pd.DataFrame, y: Any) -> str:  # noqa: N803
    """Fingerprint of a labelled evaluation set: the features with the label as a column."""
    labels = np.asarray(y).astype(np.int64)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(labels)}")
    return data_fingerprint(X.reset_index(drop=True).assign(**{LABEL: labels}))
