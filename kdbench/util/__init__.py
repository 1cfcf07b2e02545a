"""Shared helpers with no knowledge of the pipeline: atomic writes, hashing, safe YAML, seeding,
progress, levels, names, exit codes and the user-error base."""
