"""The run-directory contract: write it and read it (contract.py), and the checks every reader of
results relies on (checks.py: load_run).
"""
