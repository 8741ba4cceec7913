"""ZenML steps of the evaluation stage."""
