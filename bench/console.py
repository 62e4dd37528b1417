"""Benchmark: how soon a call shows in the web console, and how the live table copes with
10,000 calls; also writes the screenshots of each page that the README shows.

One `outcrop serve` process (scripted engine, 5 ms between tokens, `[console] max_calls =
10000`) and Debian's Chromium (Playwright, headless, 1280x900):

1. Live latency: `--calls` ConverseStream calls made with boto3 while the calls page is open;
   for each, the time from boto3 having read the whole stream to the call's row being in the
   page (Playwright waiting on the row, so this includes its own round trip).
2. 10,000 calls: that many InvokeModel calls are made, then the page is opened afresh: time
   until the table shows all of them (fetching the rows and the first render), the rows in the
   DOM, the time to show the end of the list after scrolling there, and to filter all rows.
3. Screenshots (docs/console/*.png) of each page with a few calls of each kind in it, and of
   the calls page in a 420-pixel-wide window.

Results: bench/results/console.json and .md.
Run: .venv/bin/python bench/console.py [--calls 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from playwright.sync_api import Page, expect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.console.browser import chromium  # noqa: E402
from tests.support.server import ServerProcess, running_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
SHOTS = REPO / "docs" / "console"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def stream(server: ServerProcess, text: str, model: str = MODEL) -> str:
    response = client(server).converse_stream(
        modelId=model, messages=[{"role": "user", "content": [{"text": text}]}]
    )
    for _ in response["stream"]:
        pass
    return str(response["ResponseMetadata"]["RequestId"])


def admin(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def open_page(page: Page, server: ServerProcess, route: str) -> None:
    page.goto(f"{server.url}/_outcrop/console#/{route}")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


def live_latency(page: Page, server: ServerProcess, calls: int) -> dict[str, Any]:
    open_page(page, server, "calls")
    seconds: list[float] = []
    for index in range(calls):
        request_id = stream(server, f"latency probe {index}")
        start = time.perf_counter()
        page.locator(f'a[href="#/call/{request_id}"]').wait_for(state="attached", timeout=60_000)
        seconds.append(time.perf_counter() - start)
    ordered = sorted(seconds)
    return {
        "calls": calls,
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "within_1s": sum(1 for s in seconds if s <= 1.0),
    }


def fill(server: ServerProcess, count: int) -> float:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "x"}],
        }
    ).encode()

    def one(_: int) -> None:
        request = urllib.request.Request(
            f"{server.url}/model/{MODEL}/invoke",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - start


def ten_thousand(page: Page, server: ServerProcess) -> dict[str, Any]:
    fill_s = fill(server, 10_000)
    page.goto("about:blank")  # a fresh load, not a same-document hash change
    start = time.perf_counter()
    page.goto(f"{server.url}/_outcrop/console#/calls")
    count = page.get_by_test_id("call-count")
    expect(count).to_contain_text("10000 of 10000 calls shown", timeout=120_000)
    first_render_s = time.perf_counter() - start
    rows = page.locator("table.calls tbody tr:not([aria-hidden])")
    dom_rows = rows.count()
    scroll_ms = page.evaluate(
        """() => new Promise(resolve => {
            const scroller = document.querySelector('[data-testid=calls-scroll]');
            const start = performance.now();
            scroller.scrollTop = scroller.scrollHeight;
            const check = () => {
                const last = [...document.querySelectorAll('table.calls tbody tr[aria-rowindex]')]
                    .pop();
                if (last && last.getAttribute('aria-rowindex') === '10001')
                    requestAnimationFrame(() => resolve(performance.now() - start));
                else requestAnimationFrame(check);
            };
            requestAnimationFrame(check);
        })"""
    )
    dom_rows_at_end = rows.count()
    start = time.perf_counter()
    page.get_by_label("Search").fill("ConverseStream")
    expect(count).to_contain_text("0 of 10000 calls shown")
    filter_s = time.perf_counter() - start
    return {
        "fill_10000_calls_s": round(fill_s, 1),
        "open_page_to_10000_rows_ms": round(first_render_s * 1000),
        "dom_rows": dom_rows,
        "dom_rows_scrolled_to_end": dom_rows_at_end,
        "scroll_to_end_ms": round(float(scroll_ms), 1),
        "filter_10000_rows_ms": round(filter_s * 1000),
    }


def screenshots(page: Page, server: ServerProcess) -> list[str]:
    """Pages with a few calls of each kind in them."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin(server, "DELETE", "/_outcrop/console/api/calls")
    made: list[str] = []
    stream(server, "What is the tallest mountain on Earth?")
    stream(server, "Summarise the plot of Hamlet in one line.", "amazon.nova-lite-v1:0")
    admin(
        server,
        "POST",
        "/_outcrop/faults",
        {"id": "slow-down", "action": "error", "error": "ThrottlingException", "times": 1},
    )
    with contextlib.suppress(ClientError):
        stream(server, "This one is throttled.")
    admin(server, "POST", "/_outcrop/responses", {"id": "canned", "text": "A canned answer."})
    last = stream(server, "Answer from the script, please.", "meta.llama3-8b-instruct-v1:0")
    admin(
        server,
        "POST",
        "/_outcrop/faults",
        {"id": "cut-streams", "model": "mistral.*", "action": "cut", "after_events": 3},
    )
    client_bedrock(server).create_guardrail(
        name="no-pineapple",
        blockedInputMessaging="Sorry, I can't talk about that.",
        blockedOutputsMessaging="Sorry, I can't talk about that.",
        wordPolicyConfig={"wordsConfig": [{"text": "pineapple"}]},
    )
    detail = stream(server, "Explain event streams in one paragraph.")

    def shot(name: str) -> None:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        made.append(str(path.relative_to(REPO)))

    open_page(page, server, "calls")
    expect(page.locator(f'a[href="#/call/{detail}"]')).to_be_visible()
    shot("calls")
    page.goto(f"{server.url}/_outcrop/console#/call/{detail}")
    expect(page.get_by_test_id("events")).to_be_visible()
    shot("call")
    page.get_by_test_id("events").scroll_into_view_if_needed()
    shot("call-events")
    page.goto(f"{server.url}/_outcrop/console#/call/{last}")
    expect(page.get_by_test_id("call-rules")).to_have_text("response:canned")
    page.goto(f"{server.url}/_outcrop/console#/playground")
    page.locator("textarea[name=system]").fill("You are terse.")
    page.locator("textarea[name=prompt]").fill("Name three rivers in Europe.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("pg-status")).to_contain_text("Stop reason")
    shot("playground")
    page.goto(f"{server.url}/_outcrop/console#/rules")
    expect(page.get_by_test_id("faults-table")).to_contain_text("cut-streams")
    shot("rules")
    page.goto(f"{server.url}/_outcrop/console#/guardrails")
    page.get_by_role("button", name="Open no-pineapple").click()
    page.locator("textarea[name=sample]").fill("I love pineapple on pizza")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_test_id("gr-message")).to_contain_text("GUARDRAIL_INTERVENED")
    shot("guardrails")
    page.goto(f"{server.url}/_outcrop/console#/resources")
    expect(page.get_by_test_id("engines-table")).to_be_visible()
    shot("resources")
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(f"{server.url}/_outcrop/console#/calls")
    expect(page.locator(f'a[href="#/call/{detail}"]')).to_be_visible()
    shot("calls-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})
    return made


def client_bedrock(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "outcrop.toml"
        config.write_text(
            f"[console]\nmax_calls = 10000\n[guardrails]\nstate_dir = {str(Path(tmp) / 's')!r}\n"
        )
        with (
            running_server(
                ["--engine", "scripted", "--delay-ms", "5", "--config", str(config)]
            ) as server,
            chromium() as browser,
        ):
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            shots = screenshots(page, server)
            results: dict[str, Any] = {
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "live": live_latency(page, server, args.calls),
                "ten_thousand": ten_thousand(page, server),
                "screenshots": shots,
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(results, indent=2) + "\n")
    live, big = results["live"], results["ten_thousand"]
    (RESULTS / "console.md").write_text(
        "# Web console (bench/console.py)\n\n"
        "Scripted engine (5 ms between tokens), headless Chromium, on a shared 2-core machine.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| call finished → row in the live table, median of {live['calls']} | "
        f"{live['median_ms']} ms |\n"
        f"| same, p95 / max | {live['p95_ms']} / {live['max_ms']} ms |\n"
        f"| calls shown within 1 s | {live['within_1s']} of {live['calls']} |\n"
        f"| open the page → 10,000 rows rendered | {big['open_page_to_10000_rows_ms']} ms |\n"
        f"| table rows in the DOM (top / scrolled to the end) | {big['dom_rows']} / "
        f"{big['dom_rows_scrolled_to_end']} |\n"
        f"| scroll to the end of 10,000 rows → last row painted | "
        f"{big['scroll_to_end_ms']} ms |\n"
        f"| search over 10,000 rows → table updated | {big['filter_10000_rows_ms']} ms |\n"
        f"| making the 10,000 calls (8 threads) | {big['fill_10000_calls_s']} s |\n"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
