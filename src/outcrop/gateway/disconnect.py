"""Cancelling an operation whose client has gone before its answer was ready.

A streaming call stops generating when its client leaves (the gateway watches for
`http.disconnect` while it pumps frames). A non-streaming call gathers its whole answer before
sending anything, so the client can leave while the engine still generates. `until_gone` runs
the operation while watching `receive()` for `http.disconnect`; if the client leaves first, the
operation is cancelled, which closes the engine's async iterator wherever it is consumed
(`aclosing`), so any engine aborts its generation, and `ClientGone` is raised.

Called once the request body has been read whole, so this watcher is the only reader of
`receive()`; it stops reading as soon as the operation returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from outcrop.gateway.asgi import ClientGone, Receive, wait_disconnect


async def until_gone[T](receive: Receive, work: Awaitable[T]) -> T:
    """The result of `work`, or ClientGone once `work` was cancelled because the client left."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone()
