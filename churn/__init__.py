"""churn-mlops domain package: plain Python with no ZenML or MLServer imports.

Everything the pipelines, the Feast repository and the serving runtime share lives
here, so that each concept (a feature, a setting, a data rule) is defined once.
"""

__version__ = "0.1.0"
