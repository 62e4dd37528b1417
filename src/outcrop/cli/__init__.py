"""The `outcrop` command line."""
