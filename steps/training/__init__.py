"""ZenML steps of the training stage."""
