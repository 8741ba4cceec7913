"""Feast helpers: derived features, apply, materialize, historical and online reads."""
