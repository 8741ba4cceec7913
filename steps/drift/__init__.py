"""ZenML steps of the drift stage."""
