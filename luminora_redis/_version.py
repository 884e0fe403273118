"""The package version, in one place: hatchling reads it for the wheel and sdist
metadata, and ``luminora_redis.__version__`` imports it."""

__version__ = "0.2.0"
