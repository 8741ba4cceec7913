"""Step: score the customers with the registry's champion, ranked by expected loss."""

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.features.store import get_store
from churn.models.registry import fetch_champion
from churn.models.serialize import load_model
from churn.monitoring.batch import Champion
from churn.monitoring.batch import score_customers as score_all
from steps.registry._tracking import stack_tracking_uri


@step
def score_customers(
    customers: pd.DataFrame,
    model_name: str,
    chunk_size: int,
    top_k: int,
    n_threads: int,
) -> tuple[Annotated[pd.DataFrame, "predictions"], Annotated[dict[str, Any], "scoring"]]:
    """Predictions (see churn.monitoring.batch) and how they were made.

    The champion's safe serving model (no pickle), its threshold and its
    FeatureService come from MLflow; `n_threads` 0 = every core (a batch job owns its
    machine, unlike the server's one-thread-per-request model).
    """
    champion_files = fetch_champion(
        model_name, Path(tempfile.mkdtemp(prefix="churn-batch-")), stack_tracking_uri()
    )
    threads = n_threads or os.cpu_count() or 1
    champion = Champion(
        model=load_model(champion_files.model_dir, n_threads=threads),
        model_version=f"{champion_files.model_name}-v{champion_files.version}",
        threshold=champion_files.threshold,
        feature_service=champion_files.feature_service,
    )
    began = time.perf_counter()
    predictions = score_all(get_store(), customers, champion, chunk_size=chunk_size, top_k=top_k)
    scoring = {
        "model_version": champion.model_version,
        "threshold": champion.threshold,
        "feature_service": champion.feature_service,
        "seconds": time.perf_counter() - began,
    }
    return predictions, scoring
