"""ZenML steps of the data stage."""
