"""ZenML pipelines: wiring only. Every tunable lives in configs/<pipeline>.yaml."""
