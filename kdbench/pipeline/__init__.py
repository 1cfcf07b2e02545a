"""Suite -> jobs -> run directory: the plan, what each job does, and `kdbench run` end to end."""
