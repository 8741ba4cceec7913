"""ZenML steps of the batch scoring stage."""
