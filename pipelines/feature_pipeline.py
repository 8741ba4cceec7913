"""Feature pipeline: load -> validate -> offline store -> feast apply -> materialize; and
realized outcomes (labels observed after a snapshot) -> outcome contract -> labels table.

Run: zenml pipeline run pipelines.feature_pipeline.feature_pipeline -c configs/feature_pipeline.yaml
"""

from zenml import pipeline

from churn import console
from churn.features.pipeline import DataSource, OutcomeSource
from steps.data.load_data import load_data
from steps.data.load_outcomes import load_outcomes
from steps.data.validate_data import validate_data
from steps.data.validate_outcomes import validate_outcomes
from steps.data.write_outcomes import write_outcomes
from steps.features.feast_apply import feast_apply
from steps.features.materialize import materialize
from steps.features.write_offline_store import write_offline_store


@pipeline(enable_cache=False)
def feature_pipeline(source: DataSource | None, outcomes: OutcomeSource | None) -> None:
    """Customers into the offline store and the Redis online store, outcomes into the
    labels table; either may be null in the config (not cached: each run must reach
    the stores). Outcomes are checked after this run's customers are stored, so an
    outcome may follow a snapshot written by the same run."""
    console.install()
    after: list[str] = []
    if source is not None:
        customers = validate_data(load_data(source))
        write_offline_store(customers)
        feast_apply(after="write_offline_store")
        materialize(customers, after="feast_apply")
        after = ["write_offline_store"]
    if outcomes is not None:
        checked = validate_outcomes(load_outcomes(outcomes), outcomes, after=after or None)
        write_outcomes(checked)
