"""The ASGI application: request ids, dates, routing, admin endpoints, streaming to clients."""
