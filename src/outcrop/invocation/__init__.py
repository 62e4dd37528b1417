"""The invocation layer: where a call meets an engine (see docs/architecture.md)."""
