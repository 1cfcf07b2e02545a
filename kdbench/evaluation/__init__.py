"""Scoring models: the evaluation loop, its conditions, gradient-masking diagnostics and model metrics."""
