"""ZenML steps of the business KPI stage."""
