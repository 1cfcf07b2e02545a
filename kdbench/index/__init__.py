"""The runs database (`kdbench index`, `kdbench.runs()`): every run directory in one SQLite file."""

from kdbench.index.database import FILE_NAME, IndexFileError, default_db, index_runs, read_table

__all__ = ["FILE_NAME", "IndexFileError", "default_db", "index_runs", "read_table"]
