"""A throwaway Redis for the shared-state tests (tests/support/redis_server.py)."""

from tests.support.redis_server import redis_server

__all__ = ["redis_server"]
