"""Steps that turn a batch-scoring run into a retention campaign (churn.loop.campaign)."""
