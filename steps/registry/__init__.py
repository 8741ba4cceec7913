"""ZenML steps of the registry stage."""
