"""Run one ASGI app on Granian's embedded server: the plain listener, an optional TLS one.

Owns the process-level transport: which sockets exist, when they are ready, how they stop.

* One plain listener (default `127.0.0.1:4590`) speaks HTTP/1.1 and HTTP/2 with prior knowledge
  (h2c) on the same socket (Granian `http=auto`). boto3 uses HTTP/1.1; the JS v3 Bedrock Runtime
  client uses h2c for every operation.
* An optional TLS listener on a second port offers ALPN `h2` and `http/1.1` (the Python smithy
  SDK needs TLS + h2 for the bidirectional stream).
* Both listeners run in **this** process and event loop and call **the same** app object, so
  engines, quotas and admin-scripted responses are shared. That is why this uses
  `granian.server.embed.Server` (one per listener, interface ASGINL) rather than Granian's
  process/thread runners, which load the app once per worker. ASGI lifespan is therefore not
  run: the caller builds the app before `serve()` and tears it down after.
* Granian binds with SO_REUSEPORT, so a second server on a busy port would start silently and
  share the port with the first. Each address is first bound *without* SO_REUSEPORT; a failure
  raises `ListenError` before Granian starts.
* `on_ready` receives the listener URLs once every socket accepts TCP connections.
* SIGINT/SIGTERM (or the `stop` event) stop gracefully (`on_signal` hears of each signal, so
  the command can say so): listeners close at once, in-flight responses run to completion
  (also after an HTTP/2 client's GOAWAY, RFC 9113 §6.8, which the JS SDK sends right after the
  response headers), then `serve()` returns. A second signal, or `shutdown_timeout`, cancels
  the requests still running.
* `TransportLimits` sets what Granian itself bounds (docs/limits.md): connections served at
  once per listener (Granian's `backpressure`; more wait in the listen backlog), the HTTP/1.1
  header read timeout, HTTP/2 streams per connection, each stream's send buffer and the HTTP/2
  receive windows. The open-files limit is raised to fit the connections.
* Granian logs through `_granian*` loggers, held at WARNING and propagating to the root logger
  (so the product's single ready line stays the only thing on stdout); its "embedded server is
  experimental" notice and its error log for a cancelled request are dropped.

For apps: Granian sends a response's headers together with its first `http.response.body`
message (the ASGI spec allows holding them until then). A streaming response that must show its
headers before it has data (the bidirectional stream, wire.md §4.1) sends an empty body message
with `more_body: True` right after `http.response.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.http import HTTP1Settings, HTTP2Settings
from granian.log import LogLevels
from granian.server.embed import Server as _GranianServer

__all__ = [
    "ASGIApp",
    "ListenError",
    "StopNotice",
    "TLSListener",
    "TransportLimits",
    "run",
    "serve",
]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]
"""Any ASGI 3 application callable."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4590

_READY_TIMEOUT_S = 15.0
# Granian's Rust runtime threads may still drop Python objects right after its worker reports
# it stopped; if the interpreter is finalizing by then, pyo3 aborts that thread with "panic in
# a function that cannot unwind" on stderr. A short pause before returning avoids it.
_RUST_SETTLE_S = 0.05
_FORCED_STOP_S = 5.0
# Logger names and messages of Granian 2.8 (its Rust side logs through `_granian.<module>`).
_GRANIAN_LOGGERS = ("_granian", "_granian.utils")
_EMBEDDED_NOTICE = "Embedded server is experimental!"
_APP_RAISED = "Application callable raised an exception"
_CANCELLED = ("CancelledError", "asyncio.exceptions.CancelledError")


@dataclass(frozen=True, slots=True)
class TLSListener:
    """A second listener, on the same host, speaking TLS with ALPN `h2` and `http/1.1`."""

    port: int
    cert: Path
    key: Path
    key_password: str | None = None


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """What Granian bounds per listener (`[limits]` keys of the same names, docs/limits.md)."""

    max_connections: int = 4096
    """Connections served at once; more wait in the listen backlog until one closes."""
    listen_backlog: int = 4096
    header_read_timeout_s: float = 10.0
    """HTTP/1.1: a request whose headers are not complete by then has its connection closed."""
    stream_send_buffer_bytes: int = 64 * 1024
    """Response bytes buffered per stream before the app's `send` waits for the client."""
    h2_max_concurrent_streams: int = 128
    h2_receive_window_bytes: int = 1024 * 1024
    """Request body bytes an HTTP/2 client may send ahead, per stream and per connection."""

    def granian_options(self) -> dict[str, Any]:
        return {
            "backlog": self.listen_backlog,
            "backpressure": self.max_connections,
            "http1_settings": HTTP1Settings(
                header_read_timeout=max(1, round(self.header_read_timeout_s * 1000)),
                # hyper's write buffer for HTTP/1.1 (at least 8 KiB plus one read chunk)
                max_buffer_size=max(8192 + 4096, self.stream_send_buffer_bytes),
            ),
            "http2_settings": HTTP2Settings(
                initial_connection_window_size=self.h2_receive_window_bytes,
                initial_stream_window_size=self.h2_receive_window_bytes,
                max_concurrent_streams=self.h2_max_concurrent_streams,
                max_send_buffer_size=self.stream_send_buffer_bytes,
            ),
        }


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (at most the hard limit); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


class ListenError(OSError):
    """A listener could not be opened: the port is in use, the address is not local, ..."""


@dataclass(frozen=True, slots=True)
class _Address:
    """A resolved listening address; `host` is what the user typed, `ip` what is bound."""

    scheme: str
    host: str
    ip: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def connect_ip(self) -> str:
        """Where a local client reaches this listener (wildcards mean loopback)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.ip, self.ip)


def _claim_address(scheme: str, host: str, port: int) -> _Address:
    """Resolve `host` and check that `port` is free there, binding without SO_REUSEPORT.

    Port 0 picks a free port now; another process could take it before Granian binds.
    """
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: unknown host ({exc.strerror})") from exc
    family, _, _, _, sockaddr = infos[0]
    ip = str(sockaddr[0])
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR only lets us past TIME_WAIT leftovers; a live listener still conflicts.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use (is another server running on this port?)"
            error = ListenError(f"cannot listen on {where}: {reason}")
            error.errno = exc.errno
            raise error from exc
        bound_port = int(probe.getsockname()[1])
    return _Address(scheme, host, ip, bound_port)


def _quiet_granian_logging() -> None:
    """Install `_GranianNoise` on the Granian loggers (they otherwise propagate to the root)."""
    for name in _GRANIAN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _GranianNoise) for f in logger.filters):
            logger.addFilter(_GranianNoise())


class _GranianNoise(logging.Filter):
    """Drops Granian's "experimental" notice and its error log for a cancelled request.

    A request is cancelled by a forced stop (see `_InFlight`) or when its client has gone; that
    is no failure of the app. Granian puts the traceback in the message text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message == _EMBEDDED_NOTICE:
            return False
        if message.startswith(_APP_RAISED):
            last_line = message.rstrip().rsplit("\n", 1)[-1]
            return not last_line.startswith(_CANCELLED)
        return True


# Granian's logging setup (run by every Server constructor) applied *incrementally*: it only
# sets levels, so handlers configured by the application are neither replaced nor closed.
_GRANIAN_LOG_CONFIG: dict[str, Any] = {
    "incremental": True,
    "handlers": {},
    "loggers": {"granian.access": {"level": "WARNING"}},
}


class _InFlight:
    """The app, wrapped so that a forced stop can cancel the requests still running.

    Granian runs each request as an asyncio task (task_impl=asyncio); cancelling them ends
    their connections, after which Granian's workers stop on their own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._app(scope, receive, send)
        finally:
            if task is not None:
                self._tasks.discard(task)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class _Listener:
    """One embedded Granian server; the only place that touches Granian's untyped API."""

    def __init__(
        self,
        app: ASGIApp,
        address: _Address,
        tls: TLSListener | None,
        limits: TransportLimits,
    ) -> None:
        self.address = address
        options: dict[str, Any] = limits.granian_options()
        if tls is not None:
            options |= {
                "ssl_cert": tls.cert,
                "ssl_key": tls.key,
                "ssl_key_password": tls.key_password,
                "ssl_protocol_min": SSLProtocols.tls12,
            }
        try:
            self._server: Any = _GranianServer(
                app,
                address=address.ip,
                port=address.port,
                interface=Interfaces.ASGINL,
                http=HTTPModes.auto,
                websockets=False,
                log_level=LogLevels.warning,
                log_dictconfig=_GRANIAN_LOG_CONFIG,
                **options,
            )
        except OSError as exc:  # ssl.SSLError included: Granian loads the pair to check it
            if tls is None:
                raise
            raise ListenError(
                f"cannot listen on {self._where}: unusable TLS certificate {tls.cert} "
                f"or key {tls.key}: {exc}"
            ) from exc
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self._serve(), name=f"granian {self.address.url}")
        return self.task

    async def _serve(self) -> None:
        await self._server.serve()

    def stop(self) -> None:
        """Close the socket; Granian lets open connections finish their streams."""
        self._server.stop()

    async def wait_accepting(self, deadline: float) -> None:
        """Return once a TCP connect succeeds; fail if Granian exits or the deadline passes."""
        loop = asyncio.get_running_loop()
        while True:
            if self.task is not None and self.task.done():
                raise ListenError(f"cannot listen on {self._where}: the server stopped at start")
            try:
                _, writer = await asyncio.open_connection(
                    self.address.connect_ip, self.address.port
                )
            except OSError:
                if loop.time() > deadline:
                    raise ListenError(
                        f"cannot listen on {self._where}: not accepting after "
                        f"{_READY_TIMEOUT_S:.0f} s"
                    ) from None
                await asyncio.sleep(0.01)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    @property
    def _where(self) -> str:
        return f"{self.address.host}:{self.address.port}"


StopNotice = Callable[[signal.Signals, int, bool], None]
"""Told of each stop signal: which, how many requests are in flight, whether it forces."""


class _StopSignals:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the next one forces it."""

    def __init__(
        self,
        graceful: asyncio.Event,
        force: asyncio.Event,
        in_flight: _InFlight,
        notice: StopNotice | None = None,
    ) -> None:
        self._graceful = graceful
        self._force = force
        self._in_flight = in_flight
        self._notice = notice
        self._installed: list[signal.Signals] = []

    def _on_signal(self, sig: signal.Signals) -> None:
        forcing = self._graceful.is_set()
        if forcing:
            self._force.set()
        self._graceful.set()
        if self._notice is not None:
            self._notice(sig, len(self._in_flight), forcing)

    @contextlib.contextmanager
    def installed(self, enabled: bool) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
        try:
            yield
        finally:
            for sig in self._installed:
                loop.remove_signal_handler(sig)
            self._installed.clear()


async def serve(
    app: ASGIApp,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    tls: TLSListener | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
    shutdown_timeout: float = 30.0,
    handle_signals: bool = True,
    limits: TransportLimits | None = None,
    on_signal: StopNotice | None = None,
) -> None:
    """Serve `app` until SIGINT/SIGTERM (or `stop` is set), then stop gracefully.

    `on_ready` gets the listener URLs (plain first, then TLS) once all of them accept
    connections; `on_signal` hears of each stop signal (to say that the server is stopping).
    Raises `ListenError` (an `OSError`) before serving anything if an address is unusable, or
    if a listener dies. Signal handlers are installed only when `handle_signals`
    is true and this runs on the main thread; they are removed on return. `limits` bound
    connections and buffers (defaults: `TransportLimits()`).
    """
    limits = limits if limits is not None else TransportLimits()
    # Each connection is a descriptor (two listeners at most); keep room for engines and files.
    raise_open_files_limit(2 * limits.max_connections + 1024)
    addresses = [_claim_address("http", host, port)]
    if tls is not None:
        if tls.port == addresses[0].port:
            raise ListenError(f"cannot listen on {host}:{tls.port}: TLS needs a port of its own")
        addresses.append(_claim_address("https", host, tls.port))
    _quiet_granian_logging()
    in_flight = _InFlight(app)
    listeners = [
        _Listener(in_flight, address, tls if address.scheme == "https" else None, limits)
        for address in addresses
    ]
    graceful = stop if stop is not None else asyncio.Event()
    force = asyncio.Event()
    loop = asyncio.get_running_loop()
    with _StopSignals(graceful, force, in_flight, on_signal).installed(handle_signals):
        tasks = [listener.start() for listener in listeners]
        try:
            deadline = loop.time() + _READY_TIMEOUT_S
            await asyncio.gather(*(listener.wait_accepting(deadline) for listener in listeners))
            if on_ready is not None:
                on_ready([listener.address.url for listener in listeners])
            stopped = asyncio.ensure_future(graceful.wait())
            try:
                done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            dead = [listener for listener in listeners if listener.task in done]
            if dead:
                raise ListenError(f"listener {dead[0].address.url} stopped unexpectedly")
        finally:
            await _stop_all(listeners, in_flight, force, grace_s=shutdown_timeout)


async def _stop_all(
    listeners: list[_Listener], in_flight: _InFlight, force: asyncio.Event, grace_s: float
) -> None:
    """Close the listeners and let in-flight requests finish.

    After `grace_s`, or on a second signal, cancel the requests still running; if Granian has
    not stopped `_FORCED_STOP_S` later, abandon it.
    """
    tasks = [listener.task for listener in listeners if listener.task is not None]
    for listener in listeners:
        if listener.task is None or not listener.task.done():
            with contextlib.suppress(Exception):
                listener.stop()
    drained: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    forced = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait([drained, forced], timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            in_flight.cancel_all()
            await asyncio.wait([drained], timeout=_FORCED_STOP_S)
    finally:
        forced.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(_RUST_SETTLE_S)


def run(
    app: ASGIApp,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    tls: TLSListener | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
    shutdown_timeout: float = 30.0,
) -> None:
    """Blocking `serve()` in a fresh event loop, stopping on SIGINT/SIGTERM."""
    asyncio.run(
        serve(
            app,
            host=host,
            port=port,
            tls=tls,
            on_ready=on_ready,
            shutdown_timeout=shutdown_timeout,
        )
    )
