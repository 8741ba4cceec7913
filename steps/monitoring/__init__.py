"""ZenML steps of the drift monitoring stage."""
