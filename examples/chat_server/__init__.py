"""A chat server on luminora-redis that you can copy: see README.md next to this file."""
