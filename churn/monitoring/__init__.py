"""Monitoring and batch scoring: who is at risk (batch inference) and has the data moved (drift).

Plain Python over churn.features, churn.models and churn.drift, no ZenML and no
MLServer: the pipelines' steps (steps/scoring, steps/monitoring) are thin wrappers
over these functions, and notebooks, the dashboard and tests call them directly.

- churn.monitoring.snapshots: which customers to score or test (rows of the offline
  store) and their point-in-time features from Feast, in chunks;
- churn.models.reasons (used here): per-customer reason codes from the model's contributions;
- churn.monitoring.batch: score, rank by expected loss, write predictions atomically;
- churn.monitoring.drift_report: windowed drift tests against the champion's
  detector and an HTML + JSON report with per-feature distributions;
- churn.monitoring.actions: what to do when drift is found (fail, alert, retrain).
"""
