"""The MLflow tracking URI of the active ZenML stack (shared by the registry steps).

Steps never name a stack component: the active stack's experiment tracker says
where MLflow is (SQLite on the local stack, the tracking server on EKS). A stack
without an experiment tracker falls back to churn.settings' URI, so the pipelines
also run on ZenML's default stack.
"""

from zenml.client import Client

from churn.settings import get_settings


def stack_tracking_uri() -> str:
    """Configure MLflow from the active stack's tracker and return its URI."""
    tracker = Client().active_stack.experiment_tracker
    if tracker is None:
        return get_settings().tracking_uri
    configure = getattr(tracker, "configure_mlflow", None)
    get_uri = getattr(tracker, "get_tracking_uri", None)
    if configure is None or get_uri is None:
        raise TypeError(f"experiment tracker {tracker.name!r} is not an MLflow tracker")
    configure()  # also exports credentials for a remote tracking server
    return str(get_uri())
