"""Shared helpers for tests that run Outcrop as a real process."""
