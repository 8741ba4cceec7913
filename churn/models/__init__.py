"""The model layer: encoding, candidate training, evaluation, gates, safe serialization
and the MLflow registry helpers.

Plain Python (no ZenML, no MLServer): the pipelines' steps and the serving runtime are
thin wrappers over these modules. Submodules are imported explicitly by their users
(`from churn.models.encoding import SchemaEncoder`) so that the serving hot path never
pays for MLflow or matplotlib imports it does not use.
"""
