"""`outcrop serve` stops gracefully with a console open: its live feed ends at once instead of
holding the stop until the grace period runs out (30 s, after two keepalives)."""

from __future__ import annotations

import signal
import urllib.request

from tests.support.server import running_server


def test_an_open_live_feed_ends_when_serve_is_stopped() -> None:
    with running_server(["--engine", "scripted"]) as server:
        feed = urllib.request.urlopen(f"{server.url}/_outcrop/console/api/feed", timeout=120)
        first = feed.read1(1024)
        assert first == b": outcrop console feed\n\n"
        server.proc.send_signal(signal.SIGTERM)
        rest = feed.read()  # until the server ends the response
        assert rest == b""  # no keepalive came: the feed ended before the first (15 s)
        assert server.proc.wait(timeout=120) == 0
