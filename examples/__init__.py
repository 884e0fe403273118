"""Examples of applications built on luminora-redis (not part of the installed package)."""
