"""The version, defined once: the package, the manifest of every run and the build read it."""

__version__ = "0.1.0"
