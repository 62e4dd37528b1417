"""Front-door limits on what a request may carry before anything else looks at it.

Headers: the total size of the header block (names and values) is capped, 16 KiB by default
(`[limits] max_header_bytes`). SDK requests carry about 1 KiB. HTTP servers accept far larger
blocks, so without the cap a client could make every interceptor parse megabytes of headers.
Real AWS front ends refuse oversized headers too; the exact status and error shape they send
are unverified, so Outcrop answers 431 with an error type naming the problem.
"""

from __future__ import annotations

from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.services.base import RequestContext
from outcrop.wire.errors import RequestHeaderFieldsTooLarge


class HeaderLimit(BaseInterceptor):
    """Refuses requests whose headers exceed `max_bytes` in total."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def before(self, ctx: RequestContext) -> None:
        size = sum(len(name) + len(value) + 4 for name, value in ctx.headers)
        if size > self.max_bytes:
            raise RequestHeaderFieldsTooLarge(
                f"The request headers total {size} bytes, more than the {self.max_bytes} "
                "bytes allowed."
            )
