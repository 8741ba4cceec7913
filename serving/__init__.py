"""Online inference for the churn model: an MLServer runtime reading Feast features from Redis.

- serving.runtime: `ChurnRuntime`, the MLServer model (V2 protocol), deployable
  unchanged by a local MLServer, Seldon Core v1/v2 or KServe.
- serving.bundle: build and verify the directory a runtime serves.
- deployment.local_server: the project's own MLServer process (start/stop/reload).
- serving.settings: CHURN_SERVING_* settings.

Importing this package imports nothing heavy (no MLServer, Feast or model code).
"""
