"""Transport conformance of `outcrop.server`: real clients against `transport_app` in a process.

What the product needs from its listeners (wire.md §0, §7): boto3 over HTTP/1.1, the JS v3
Bedrock client over h2c with prior knowledge (which sends GOAWAY right after the response
headers, so in-flight streams must outlive it), TLS with ALPN h2, full duplex request/response
bodies, one app object behind both listeners, a clear failure on a busy port, and a graceful
stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from tests.conformance.jsclient import EXAMPLE_CREDENTIALS, node_or_skip, run_js
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
STREAM_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "messages": []}
EVENT_COUNT = 3
EVENT_GAP_MS = 300


@dataclass
class AppProcess:
    """`python -m tests.conformance.transport_app`, with its stdout/stderr collected live."""

    proc: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def tls_url(self) -> str:
        return self.urls[1]

    def wait_line(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stdout):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(
            f"no {prefix!r} line from transport_app (exit {self.proc.poll()}):\n"
            + "".join(self.stdout + self.stderr)
        )

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _collect(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def start_app(*args: str) -> AppProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.conformance.transport_app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    app = AppProcess(proc)
    threading.Thread(target=_collect, args=(proc.stdout, app.stdout), daemon=True).start()
    threading.Thread(target=_collect, args=(proc.stderr, app.stderr), daemon=True).start()
    return app


def start_ready_app(*args: str) -> AppProcess:
    app = start_app(*args)
    try:
        app.urls = app.wait_line("READY").split()[1:]
    except BaseException:
        app.stop()
        raise
    return app


@pytest.fixture(scope="module")
def server(tls_files: tuple[Path, Path]) -> Iterator[AppProcess]:
    """One transport_app serving plain (HTTP/1.1 + h2c) and TLS listeners."""
    cert, key = tls_files
    app = start_ready_app(
        "--port", str(free_port()), "--tls-port", str(free_port()),
        "--cert", str(cert), "--key", str(key),
    )  # fmt: skip
    yield app
    code = app.stop()
    assert code == 0, "".join(app.stderr)
    # Granian stays quiet: no log lines, no Rust panic at interpreter exit.
    assert app.stderr == []
    assert [line for line in app.stdout if not line.startswith("STREAM")] == [
        f"READY {' '.join(app.urls)}\n"
    ]


def boto3_client(endpoint: str, verify: Path | None = None) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoint,
        verify=str(verify) if verify is not None else None,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=EXAMPLE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def decode_chunk(event: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event["chunk"]["bytes"])
    return data


def test_ready_line_lists_both_listeners(server: AppProcess) -> None:
    plain, tls = (urlsplit(u) for u in server.urls)
    assert (plain.scheme, plain.hostname) == ("http", "127.0.0.1")
    assert (tls.scheme, tls.hostname) == ("https", "127.0.0.1")
    assert plain.port != tls.port


def test_boto3_over_http1_gets_every_event(server: AppProcess) -> None:
    response = boto3_client(server.url).invoke_model_with_response_stream(
        modelId=MODEL_ID, body=json.dumps(STREAM_BODY)
    )
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    chunks = [decode_chunk(event) for event in response["body"]]
    assert [c["index"] for c in chunks] == list(range(EVENT_COUNT))
    assert {c["http_version"] for c in chunks} == {"1.1"}
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert headers["x-amzn-bedrock-content-type"] == "application/json"
    assert response["contentType"] == "application/json"
    assert response["ResponseMetadata"]["RequestId"]
    assert "date" in headers


def test_boto3_over_tls_gets_every_event(server: AppProcess, tls_files: tuple[Path, Path]) -> None:
    response = boto3_client(server.tls_url, verify=tls_files[0]).invoke_model_with_response_stream(
        modelId=MODEL_ID, body=json.dumps(STREAM_BODY)
    )
    chunks = [decode_chunk(event) for event in response["body"]]
    assert [(c["index"], c["http_version"], c["scheme"]) for c in chunks] == [
        (index, "1.1", "https") for index in range(EVENT_COUNT)
    ]


@pytest.mark.node
def test_js_over_h2c_streams_every_event_after_its_goaway(server: AppProcess) -> None:
    """The JS client sends GOAWAY once headers arrive; events keep flowing, 300 ms apart."""
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MODEL_ID,
            "body": STREAM_BODY,
        }
    )
    done = run.ok()
    assert [e["event"] for e in run.events] == ["chunk"] * EVENT_COUNT
    assert [e["data"]["index"] for e in run.events] == list(range(EVENT_COUNT))
    assert {e["data"]["http_version"] for e in run.events} == {"2"}
    assert done["response"]["headers"]["x-outcrop-http-version"] == "2"
    assert ":authority" in done["request"]["headers"]
    # Streamed, not buffered: the events arrive spread over the server's 2 x 300 ms of pauses.
    # (A loose lower bound; this checks delivery as it happens, not speed.)
    times = [e["t"] for e in run.events]
    assert times[-1] - times[0] >= EVENT_GAP_MS


@pytest.mark.node
def test_js_over_tls_h2_streams_every_event(
    server: AppProcess, tls_files: tuple[Path, Path]
) -> None:
    run = run_js(
        {
            "endpoint": server.tls_url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MODEL_ID,
            "body": STREAM_BODY,
        },
        ca_file=tls_files[0],
    )
    run.ok()
    assert [e["data"]["index"] for e in run.events] == list(range(EVENT_COUNT))
    assert {(e["data"]["http_version"], e["data"]["scheme"]) for e in run.events} == {
        ("2", "https")
    }


@pytest.mark.node
def test_js_over_tls_rejects_an_untrusted_certificate(server: AppProcess) -> None:
    """The TLS test above is meaningful: without the CA the SDK refuses the server."""
    run = run_js(
        {
            "endpoint": server.tls_url,
            "operation": "InvokeModel",
            "modelId": MODEL_ID,
            "body": STREAM_BODY,
            "maxAttempts": 1,
        },
        env={"NODE_EXTRA_CA_CERTS": ""},
    )
    assert run.error is not None
    assert "certificate" in run.error["message"]


@pytest.mark.node
def test_js_bidirectional_stream_is_full_duplex_over_h2c(server: AppProcess) -> None:
    """Each echoed event arrives before the SDK sends the next input event (300 ms later)."""
    inputs = [{"json": {"n": n}, "delayMs": 0 if n == 0 else EVENT_GAP_MS} for n in range(3)]
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithBidirectionalStream",
            "modelId": "amazon.nova-sonic-v1:0",
            "inputEvents": inputs,
        }
    )
    run.ok()
    assert [e["data"] for e in run.events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    sent_at = [line["t"] for line in run.sent]
    received_at = [e["t"] for e in run.events]
    assert len(sent_at) == 3
    for n in range(2):
        assert sent_at[n] <= received_at[n] < sent_at[n + 1]


@pytest.mark.node
def test_js_invoke_model_returns_the_parsed_body(server: AppProcess) -> None:
    run = run_js(
        {"endpoint": server.url, "operation": "InvokeModel", "modelId": MODEL_ID,
         "body": STREAM_BODY, "accept": "application/json"}
    )  # fmt: skip
    done = run.ok()
    assert done["output"]["body"] == STREAM_BODY
    assert done["output"]["contentType"] == "application/json"
    assert done["request"]["headers"]["content-type"] == "application/json"
    assert done["$metadata"]["httpStatusCode"] == 200
    assert done["events"] == 0


@pytest.mark.node
def test_js_reports_http_errors_with_their_class(server: AppProcess) -> None:
    run = run_js(
        {"endpoint": server.url, "operation": "InvokeModel", "modelId": "error-validation",
         "body": STREAM_BODY, "maxAttempts": 1}
    )  # fmt: skip
    error = run.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert error["message"] == "The provided model identifier is invalid."
    assert error["$fault"] == "client"
    assert error["$metadata"]["httpStatusCode"] == 400
    assert run.final["response"]["statusCode"] == 400


@pytest.mark.node
def test_js_reports_a_mid_stream_exception_with_its_members(server: AppProcess) -> None:
    run = run_js(
        {"endpoint": server.url, "operation": "InvokeModelWithResponseStream",
         "modelId": "error-midstream", "body": STREAM_BODY}
    )  # fmt: skip
    assert [e["data"]["index"] for e in run.events] == [0]
    error = run.error
    assert error is not None
    assert error["name"] == "ModelStreamErrorException"
    assert error["message"] == "boom"
    assert (error["originalStatusCode"], error["originalMessage"]) == (500, "died")
    assert run.final["events"] == 1


class RawH2:
    """A bare HTTP/2 client (python-h2) that can send a GOAWAY and keep using its stream."""

    def __init__(self, url: str, cafile: Path | None = None) -> None:
        h2_connection = pytest.importorskip("h2.connection", reason="needs the `h2` package")
        h2_config = pytest.importorskip("h2.config")
        self.events_mod = pytest.importorskip("h2.events")
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        sock: socket.socket = socket.create_connection((parts.hostname, parts.port), timeout=10)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(cafile))
            context.set_alpn_protocols(["h2", "http/1.1"])
            tls_sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            assert tls_sock.selected_alpn_protocol() == "h2"
            sock = tls_sock
        self.sock = sock
        self.authority = parts.netloc
        self.scheme = parts.scheme
        self.conn = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def send_goaway_raw(self) -> None:
        """GOAWAY(last_stream_id=0, NO_ERROR), as Node's session.close() sends it.

        Written past python-h2, whose state machine would refuse further DATA after it.
        """
        self.sock.sendall(bytes.fromhex("0000080700000000000000000000000000"))

    def next_events(self) -> list[Any]:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("the server closed the connection")
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, self.events_mod.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        return list(events)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("listener", ["h2c", "tls"])
def test_h2_full_duplex_echo_survives_client_goaway(
    server: AppProcess, tls_files: tuple[Path, Path], listener: str
) -> None:
    """Send body chunks one at a time and read each echo before sending the next."""
    client = RawH2(server.url if listener == "h2c" else server.tls_url, cafile=tls_files[0])
    events = client.events_mod
    try:
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":path", "/echo"),
                (":scheme", client.scheme),
                (":authority", client.authority),
            ],
        )
        client.flush()
        status = None
        while status is None:
            for event in client.next_events():
                if isinstance(event, events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
        assert status == b"200"
        client.send_goaway_raw()
        for piece in (b"first piece", b"second piece", b"third piece"):
            client.conn.send_data(stream_id, piece)
            client.flush()
            echoed = b""
            while len(echoed) < len(piece):
                for event in client.next_events():
                    if isinstance(event, events.DataReceived):
                        echoed += event.data
            assert echoed == piece
        client.conn.end_stream(stream_id)
        client.flush()
        ended = False
        while not ended:
            ended = any(isinstance(e, events.StreamEnded) for e in client.next_events())
    finally:
        client.close()


def test_http1_full_duplex_echo(server: AppProcess) -> None:
    """HTTP/1.1 chunked request body, echoed chunk by chunk while the request is still open."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: " + parts.netloc.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        received = b""
        for piece in (b"first piece", b"second piece"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            while b"\r\n%s\r\n" % piece not in received:  # a chunk: size line, data, CRLF
                data = sock.recv(65536)
                assert data, f"connection closed; got {received!r}"
                received += data
        assert received.startswith(b"HTTP/1.1 200")
        sock.sendall(b"0\r\n\r\n")
        while not received.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, f"connection closed; got {received!r}"
            received += data


def test_both_listeners_share_one_app_object(
    server: AppProcess, tls_files: tuple[Path, Path]
) -> None:
    """State set through one listener is seen through the other: one process, one app."""
    tls_context = ssl.create_default_context(cafile=str(tls_files[0]))

    def count(url: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{url}/count", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10, context=tls_context) as response:
            result: dict[str, Any] = json.load(response)
            return result

    first, second, third = count(server.url), count(server.tls_url), count(server.url)
    assert [first["scheme"], second["scheme"], third["scheme"]] == ["http", "https", "http"]
    assert second["count"] == first["count"] + 1
    assert third["count"] == second["count"] + 1
    assert first["pid"] == second["pid"] == third["pid"] == server.proc.pid


def test_second_server_on_a_busy_port_fails_clearly(server: AppProcess) -> None:
    busy_port = urlsplit(server.url).port
    second = start_app("--port", str(busy_port))
    code = second.proc.wait(timeout=20)
    time.sleep(0.1)  # let the reader threads drain the pipes
    assert code == 1
    message = "".join(second.stderr)
    assert f"cannot listen on 127.0.0.1:{busy_port}: address already in use" in message
    assert not any(line.startswith("READY") for line in second.stdout)


def test_busy_tls_port_fails_before_serving(
    server: AppProcess, tls_files: tuple[Path, Path]
) -> None:
    busy_tls_port = urlsplit(server.tls_url).port
    cert, key = tls_files
    second = start_app(
        "--port", str(free_port()), "--tls-port", str(busy_tls_port),
        "--cert", str(cert), "--key", str(key),
    )  # fmt: skip
    assert second.proc.wait(timeout=20) == 1
    time.sleep(0.1)
    assert f"127.0.0.1:{busy_tls_port}: address already in use" in "".join(second.stderr)
    assert not any(line.startswith("READY") for line in second.stdout)


def refuses_connections(url: str, within_s: float) -> bool:
    port = urlsplit(url).port or 0
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.node
def test_sigterm_lets_in_flight_streams_finish() -> None:
    """SIGTERM mid-stream: new connections are refused at once, the h2c (JS) and HTTP/1.1
    (boto3) streams in flight complete, then the process exits 0 and quietly."""
    node_or_skip()
    app = start_ready_app("--port", str(free_port()), "--event-gap-ms", "1000")
    try:
        js_result: list[Any] = []
        command = {
            "endpoint": app.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MODEL_ID,
            "body": STREAM_BODY,
        }
        js = threading.Thread(target=lambda: js_result.append(run_js(command)))
        js.start()
        app.wait_line("STREAM")
        h1 = boto3_client(app.url).invoke_model_with_response_stream(
            modelId=MODEL_ID, body=json.dumps(STREAM_BODY)
        )
        h1_events = iter(h1["body"])
        first = decode_chunk(next(h1_events))
        app.proc.send_signal(signal.SIGTERM)

        assert refuses_connections(app.url, within_s=0.8)
        rest = [decode_chunk(event) for event in h1_events]
        assert [c["index"] for c in [first, *rest]] == list(range(EVENT_COUNT))
        js.join(timeout=60)
        run = js_result[0]
        run.ok()
        assert [e["data"]["index"] for e in run.events] == list(range(EVENT_COUNT))
        assert app.proc.wait(timeout=20) == 0
        time.sleep(0.1)  # let the reader threads drain the pipes
        assert app.stderr == []
    finally:
        app.stop()


def test_chunk_frames_are_real_bedrock_frames() -> None:
    """The app's frames decode with botocore's parser, as boto3 will decode them."""
    from botocore.eventstream import EventStreamBuffer

    from tests.conformance.transport_app import chunk_frame

    buffer = EventStreamBuffer()
    buffer.add_data(chunk_frame({"index": 0}))
    (message,) = list(buffer)
    assert message.headers == {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    payload = json.loads(message.payload)
    assert json.loads(base64.b64decode(payload["bytes"])) == {"index": 0}


async def test_serve_in_process_on_port_zero_until_stop_is_set() -> None:
    """`serve()` as a library: port 0, `on_ready` URLs, and a graceful stop through `stop`."""
    from outcrop.server import serve
    from tests.conformance.transport_app import app

    ready: list[list[str]] = []
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(app, host="127.0.0.1", port=0, on_ready=ready.append, stop=stop, handle_signals=False)
    )
    try:
        while not ready:
            assert not serving.done(), serving.exception()
            await asyncio.sleep(0.01)
        (url,) = ready[0]
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname) == ("http", "127.0.0.1")
        assert parts.port
        reader, writer = await asyncio.open_connection("127.0.0.1", parts.port)
        writer.write(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b'{"http_version": "1.1", "scheme": "http"}')
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=20)


@pytest.mark.parametrize(
    ("host", "port", "tls_port", "message"),
    [
        ("no-such-host.invalid", 0, None, "unknown host"),
        ("192.0.2.1", 0, None, "cannot listen on 192.0.2.1:0"),
        ("127.0.0.1", 4599, 4599, "TLS needs a port of its own"),
    ],
)
async def test_unusable_addresses_fail_before_serving(
    host: str, port: int, tls_port: int | None, message: str, tls_files: tuple[Path, Path]
) -> None:
    from outcrop.server import ListenError, TLSListener, serve
    from tests.conformance.transport_app import app

    tls = None if tls_port is None else TLSListener(tls_port, tls_files[0], tls_files[1])
    ready: list[list[str]] = []
    with pytest.raises(ListenError, match=message) as caught:
        await asyncio.wait_for(
            serve(app, host=host, port=port, tls=tls, on_ready=ready.append, handle_signals=False),
            timeout=20,
        )
    assert isinstance(caught.value, OSError)
    assert ready == []


async def test_unusable_tls_files_fail_before_serving(tmp_path: Path) -> None:
    from outcrop.server import ListenError, TLSListener, serve
    from tests.conformance.transport_app import app

    not_a_cert = tmp_path / "cert.pem"
    not_a_cert.write_text("not a certificate\n")
    tls = TLSListener(free_port(), not_a_cert, tmp_path / "missing-key.pem")
    with pytest.raises(ListenError, match="unusable TLS certificate"):
        await serve(app, host="127.0.0.1", port=0, tls=tls, handle_signals=False)
