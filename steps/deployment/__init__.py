"""ZenML steps of the deployment stage."""
