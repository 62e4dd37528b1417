"""Cost of SigV4 verification per request: auth mode `open` vs `verify`, side by side.

Two measurements in one run:

1. Server: two `outcrop serve` processes on the scripted engine (one in mode open, one in
   mode verify with the signing key configured and an allow-all policy) receive the same
   boto3-signed InvokeModel requests over keep-alive HTTP/1.1 connections from a few client
   threads. Rounds alternate between the servers; requests per second per round are recorded
   and the ratio verify / open is reported. (A signature stays valid for its skew window and
   SigV4 has no nonce, so pre-signed requests are verified in full on every arrival.)
2. In process: `wire.sigv4` alone, per request: reading the signature (all open mode does)
   vs reading and verifying it (verify mode), on the same signed request.

Results: bench/results/auth_cost.json and .md.

Run: .venv/bin/python bench/auth_cost.py [--requests 600] [--threads 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import running_server

from outcrop.wire import sigv4

RESULTS = Path(__file__).resolve().parent / "results"
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MODEL_PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hello there"}],
    }
).encode()

ENGINE = '[engines.default]\ntype = "scripted"\ntext = "ok"\n'
VERIFY = (
    ENGINE
    + f"""
[auth]
mode = "verify"

[[auth.credentials]]
access_key_id = "{KEY}"
secret_access_key = "{SECRET}"
principal = "bench"

[principals.bench]
policies = ["all"]

[policies.all]
[[policies.all.Statement]]
Effect = "Allow"
Action = "bedrock:*"
Resource = "*"
"""
)


def signed(url: str) -> tuple[str, dict[str, str]]:
    """A boto3-style signed InvokeModel: (path, headers)."""
    request = AWSRequest(
        method="POST",
        url=url + MODEL_PATH,
        data=BODY,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    SigV4Auth(Credentials(KEY, SECRET), "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = {k: v if isinstance(v, str) else v.decode() for k, v in prepared.headers.items()}
    return urlsplit(prepared.url).path, headers


def blast(url: str, requests: int, threads: int) -> float:
    """Requests per second for `requests` calls spread over `threads` keep-alive connections."""
    path, headers = signed(url)
    parts = urlsplit(url)
    per_thread = requests // threads
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        for _ in range(per_thread):
            conn.request("POST", path, body=BODY, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{response.status} {response.getheader('X-Amzn-ErrorType')}")
        conn.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return per_thread * threads / elapsed


def in_process(iterations: int) -> dict[str, float]:
    """Microseconds per request for reading vs reading and verifying a signature."""
    path, headers = signed("http://127.0.0.1:4590")
    request = sigv4.HttpRequest(
        "POST", path, "", (*headers.items(), ("host", "127.0.0.1:4590")), BODY
    )
    sigv4.signing_key.cache_clear()

    def timed(fn: Any) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(iterations):
                fn()
            best = min(best, (time.perf_counter() - started) / iterations)
        return best * 1e6

    def read_only() -> None:
        sigv4.read_claim(request)

    def verify() -> None:
        claim = sigv4.read_claim(request)
        sigv4.check_scope(claim, ["bedrock"], None)
        sigv4.verify_signature(request, claim, SECRET)

    return {"read_claim_us": timed(read_only), "read_and_verify_us": timed(verify)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="outcrop-bench-auth-"))
    (folder / "open.toml").write_text(ENGINE)
    (folder / "verify.toml").write_text(VERIFY)
    rates: dict[str, list[float]] = {"open": [], "verify": []}
    with (
        running_server(["--config", str(folder / "open.toml")]) as open_server,
        running_server(["--config", str(folder / "verify.toml")]) as verify_server,
    ):
        servers = {"open": open_server.url, "verify": verify_server.url}
        for url in servers.values():  # warm-up
            blast(url, args.threads * 20, args.threads)
        for round_number in range(args.rounds):
            order = ["open", "verify"] if round_number % 2 == 0 else ["verify", "open"]
            for mode in order:
                rates[mode].append(blast(servers[mode], args.requests, args.threads))
                print(f"round {round_number + 1} {mode:6s} {rates[mode][-1]:8.1f} req/s")
    micro = in_process(2000)
    open_rps = statistics.median(rates["open"])
    verify_rps = statistics.median(rates["verify"])
    result: dict[str, Any] = {
        "benchmark": "auth_cost",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": vars(args),
        "server": {
            "open_rps": rates["open"],
            "verify_rps": rates["verify"],
            "open_rps_median": open_rps,
            "verify_rps_median": verify_rps,
            "verify_over_open": verify_rps / open_rps,
            "verify_cost_us_per_request": (1 / verify_rps - 1 / open_rps) * 1e6,
        },
        "in_process": micro,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "auth_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "auth_cost.md").write_text(
        "# SigV4 verification cost (auth mode open vs verify)\n\n"
        f"{result['when']}, {result['machine']['platform']}, "
        f"{result['machine']['cpus']} CPUs (shared), Python {result['machine']['python']}.\n"
        f"`bench/auth_cost.py --requests {args.requests} --threads {args.threads} "
        f"--rounds {args.rounds}`; boto3-signed InvokeModel, scripted engine, HTTP/1.1 "
        "keep-alive, rounds alternating.\n\n"
        "| | open | verify | verify / open |\n|---|---|---|---|\n"
        f"| server, req/s (median of {args.rounds}) | {open_rps:.0f} | {verify_rps:.0f} | "
        f"{verify_rps / open_rps:.3f} |\n"
        f"| in process, µs per request (wire.sigv4) | {micro['read_claim_us']:.1f} "
        f"(read) | {micro['read_and_verify_us']:.1f} (read + verify) | "
        f"{micro['read_and_verify_us'] / micro['read_claim_us']:.1f} |\n\n"
        "Per round, req/s: open "
        + ", ".join(f"{r:.0f}" for r in rates["open"])
        + "; verify "
        + ", ".join(f"{r:.0f}" for r in rates["verify"])
        + ".\n"
    )
    print(json.dumps(result["server"], indent=2))
    print(json.dumps(micro, indent=2))


if __name__ == "__main__":
    main()
