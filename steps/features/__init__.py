"""ZenML steps of the features stage."""
