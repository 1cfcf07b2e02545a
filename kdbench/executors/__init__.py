"""Executors run a plan's jobs into the content-addressed job store: local, or on a Ray cluster."""
