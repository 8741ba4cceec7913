"""Feature pipeline: load -> validate -> offline store -> feast apply -> materialize.

Run: zenml pipeline run pipelines.feature_pipeline.feature_pipeline -c configs/feature_pipeline.yaml
"""

from zenml import pipeline

from churn import console
from churn.features.pipeline import DataSource
from steps.data.load_data import load_data
from steps.data.validate_data import validate_data
from steps.features.feast_apply import feast_apply
from steps.features.materialize import materialize
from steps.features.write_offline_store import write_offline_store


@pipeline(enable_cache=False)
def feature_pipeline(source: DataSource) -> None:
    """Customers into the offline store and the Redis online store (not cached:
    each run must reach the stores)."""
    console.install()
    customers = validate_data(load_data(source))
    write_offline_store(customers)
    feast_apply(after="write_offline_store")
    materialize(customers, after="feast_apply")
