"""The commands against a server that verifies signatures and enforces a quota.

Checks that the bench's own SigV4 signing (aiohttp + botocore's signer, model IDs with `:` in
the path) is accepted by a verifying server, that bad credentials end `invoke` and `bench` with
the AWS error on one line, and that throttled requests are counted by type in the bench results
and as InvocationThrottles in the metrics.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.conftest import HAIKU, SONNET, one_line_error, run_outcrop
from tests.support.server import ServerProcess, running_server

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the test suite's dummy credentials
CONFIG = f"""
[auth]
mode = "verify"
account_id = "123456789012"

[[auth.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "{SECRET}"
principal = "alice"

[principals.alice]
policies = ["invoke-anything"]

[policies.invoke-anything]
Version = "2012-10-17"
[[policies.invoke-anything.Statement]]
Effect = "Allow"
Action = "bedrock:InvokeModel*"
Resource = "*"

[engines.default]
type = "scripted"

[[quotas]]
model = "{SONNET}"
requests_per_minute = 5
"""


@pytest.fixture(scope="module")
def verifying_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("verify") / "outcrop.toml"
    config.write_text(CONFIG)
    with running_server(["--config", str(config)]) as server:
        yield server


def test_signed_requests_pass(verifying_server: ServerProcess, tmp_path: Path) -> None:
    invoked = run_outcrop(["invoke", HAIKU, "signed", "--endpoint-url", verifying_server.url])
    assert invoked.returncode == 0, invoked.stderr
    assert invoked.stdout == "Echo: signed\n"
    for client in ("raw", "sdk"):
        out = tmp_path / client
        result = run_outcrop(
            [
                "bench",
                HAIKU,
                "--endpoint-url",
                verifying_server.url,
                "--requests",
                "6",
                "--client",
                client,
                "--no-plot",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        assert result.returncode == 0, result.stderr
        doc = json.loads(out.with_name(f"{client}.json").read_text())
        assert (doc["summary"]["requests"], doc["summary"]["errors"]) == (6, {})


def test_wrong_secret(verifying_server: ServerProcess) -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    invoked = run_outcrop(["invoke", HAIKU, "hi", "--endpoint-url", verifying_server.url], env=env)
    assert invoked.returncode == 1
    assert one_line_error(invoked).startswith(
        "outcrop: InvalidSignatureException: The request signature we calculated does not match"
    )
    bench = run_outcrop(["bench", HAIKU, "--endpoint-url", verifying_server.url], env=env)
    assert bench.returncode == 1
    assert one_line_error(bench).startswith("outcrop: InvalidSignatureException: ")


def test_unknown_access_key(verifying_server: ServerProcess) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIDNOBODY"}
    invoked = run_outcrop(["invoke", HAIKU, "hi", "--endpoint-url", verifying_server.url], env=env)
    assert invoked.returncode == 1
    assert one_line_error(invoked) == (
        "outcrop: UnrecognizedClientException: "
        "The security token included in the request is invalid."
    )


def test_throttled_requests_are_counted(verifying_server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "throttled"
    result = run_outcrop(
        [
            "bench",
            SONNET,
            "--endpoint-url",
            verifying_server.url,
            "--requests",
            "12",
            "--concurrency",
            "1",
            "--warmup",
            "0",
            "--no-plot",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_name("throttled.json").read_text())["summary"]
    assert summary["requests"] == 5
    assert summary["errors"] == {"ThrottlingException": 7}
    assert "ThrottlingException × 7" in result.stdout
    with urllib.request.urlopen(f"{verifying_server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    counted = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == SONNET
    }
    assert counted["outcrop_invocation_throttles_total"] == 7
    assert counted["outcrop_invocations_total"] == 5
