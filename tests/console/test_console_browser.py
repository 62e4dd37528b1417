"""The web console in a real browser (Debian's Chromium driven by Playwright) against
`outcrop serve` as a process: what boto3 does shows in it, and what it does reaches boto3.

Timings (how soon a call shows, how long 10,000 rows take to render) are measured by
bench/console.py, not asserted here.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from openai import OpenAI
from playwright.sync_api import Page, expect

from tests.console.conftest import QUOTA_MODEL
from tests.support.server import ServerProcess

pytestmark = pytest.mark.console

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120),
    )


def converse_stream(server: ServerProcess, text: str, model: str = MODEL) -> tuple[str, list[str]]:
    """The request ID and the event names boto3 received."""
    response = client(server).converse_stream(
        modelId=model, messages=[{"role": "user", "content": [{"text": text}]}]
    )
    names = [next(iter(event)) for event in response["stream"]]
    return response["ResponseMetadata"]["RequestId"], names


def open_console(page: Page, server: ServerProcess, route: str = "calls") -> None:
    page.goto(f"{server.url}/_outcrop/console#/{route}")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


def test_a_boto3_call_appears_in_the_live_table_and_its_page_shows_every_event(
    page: Page, console_server: ServerProcess
) -> None:
    open_console(page, console_server)
    request_id, names = converse_stream(console_server, f"live table {uuid.uuid4()}")
    row_link = page.locator(f'a[href="#/call/{request_id}"]')
    expect(row_link).to_be_visible()  # arrived through the live feed, no reload
    row = page.locator("tr", has=row_link)
    expect(row).to_contain_text("ConverseStream")
    expect(row).to_contain_text(MODEL)
    row_link.click()
    expect(page.get_by_test_id("call-id")).to_have_text(request_id)
    events = page.get_by_test_id("events").locator("li")
    expect(events).to_have_count(len(names))
    for index, name in enumerate(names):
        expect(events.nth(index).locator("strong")).to_have_text(name)
    expect(page.get_by_test_id("assembled-text")).to_contain_text("live table")
    # Copy as: the boto3 snippet names the operation and the model.
    expect(page.get_by_test_id("snippet")).to_contain_text("client.converse_stream(")
    page.get_by_label("curl").check()
    expect(page.get_by_test_id("snippet")).to_contain_text("--aws-sigv4")


def test_a_call_to_the_openai_endpoint_is_copied_as_openai_sdk_code_without_an_aws_cli_tab(
    page: Page, console_server: ServerProcess
) -> None:
    client = OpenAI(base_url=f"{console_server.url}/openai/v1", api_key="any", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="openai.gpt-oss-20b-1:0",
        messages=[{"role": "user", "content": f"openai snippet {uuid.uuid4()}"}],
    )
    request_id = raw.headers["x-amzn-requestid"]
    page.goto(f"{console_server.url}/_outcrop/console#/call/{request_id}")
    expect(page.get_by_test_id("call-id")).to_have_text(request_id)
    snippet = page.get_by_test_id("snippet")
    expect(snippet).to_contain_text("from openai import OpenAI")
    expect(snippet).to_contain_text(f'base_url="{console_server.url}/openai/v1"')
    expect(snippet).not_to_contain_text("invoke_model")
    expect(page.get_by_label("AWS CLI")).to_have_count(0)
    page.get_by_label("OpenAI JavaScript").check()
    expect(snippet).to_contain_text('import OpenAI from "openai";')
    page.get_by_label("curl").check()
    expect(snippet).to_contain_text("/openai/v1/chat/completions")
    expect(snippet).to_contain_text("Authorization: Bearer $AWS_BEARER_TOKEN_BEDROCK")


def test_a_fault_rule_created_in_the_console_makes_the_next_boto3_call_fail(
    page: Page, console_server: ServerProcess
) -> None:
    marker = f"fault-{uuid.uuid4().hex[:12]}"
    open_console(page, console_server, "rules")
    rule = {
        "id": marker,
        "operation": "Converse",
        "prompt": marker,
        "action": "error",
        "error": "ThrottlingException",
        "message": "Slow down (made in the console)",
        "times": 1,
    }
    page.locator("textarea[name=faults-json]").fill(json.dumps(rule))
    page.locator("form", has=page.locator("textarea[name=faults-json]")).get_by_role(
        "button", name="Add"
    ).click()
    expect(page.get_by_test_id("faults-table")).to_contain_text(marker)
    messages = [{"role": "user", "content": [{"text": f"please {marker}"}]}]
    with pytest.raises(ClientError) as raised:
        client(console_server).converse(modelId=MODEL, messages=messages)
    error = raised.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "ThrottlingException",
        "Slow down (made in the console)",
    )
    # Used up (times = 1): the call after it succeeds, and the failed call names the rule.
    client(console_server).converse(modelId=MODEL, messages=messages)
    request_id = raised.value.response["ResponseMetadata"]["RequestId"]
    page.goto(f"{console_server.url}/_outcrop/console#/call/{request_id}")
    expect(page.get_by_test_id("call-rules")).to_have_text(f"fault:{marker}")
    expect(page.get_by_test_id("call-status")).to_contain_text("429 ThrottlingException")


def test_a_guardrail_created_in_the_console_intervenes_on_a_converse_call(
    page: Page, console_server: ServerProcess
) -> None:
    word = f"zq{uuid.uuid4().hex[:8]}"
    name = f"console-{word}"
    open_console(page, console_server, "guardrails")
    page.locator("input[name=gr-name]").fill(name)
    page.locator("textarea[name=gr-words]").fill(word)
    page.locator("input[name=gr-blocked]").fill("Blocked by the console's guardrail.")
    page.get_by_role("button", name="Create guardrail").click()
    created = page.get_by_test_id("gr-created")
    expect(created).to_contain_text("Created guardrail")
    match = re.search(r"Created guardrail (\S+)\.", created.inner_text())
    assert match is not None
    guardrail_id = match.group(1)
    expect(page.get_by_test_id("guardrails-table")).to_contain_text(name)
    # Test text against it in the console (ApplyGuardrail).
    page.locator("textarea[name=sample]").fill(f"say {word} now")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_test_id("gr-message")).to_have_text("ApplyGuardrail: GUARDRAIL_INTERVENED")
    response = client(console_server).converse(
        modelId=MODEL,
        messages=[{"role": "user", "content": [{"text": f"tell me about {word}"}]}],
        guardrailConfig={"guardrailIdentifier": guardrail_id, "guardrailVersion": "DRAFT"},
    )
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"][0]["text"] == (
        "Blocked by the console's guardrail."
    )


def test_replay_of_a_recorded_call_succeeds_with_another_model(
    page: Page, console_server: ServerProcess
) -> None:
    request_id, _ = converse_stream(console_server, f"replay me {uuid.uuid4()}")
    page.goto(f"{console_server.url}/_outcrop/console#/call/{request_id}")
    expect(page.get_by_test_id("call-id")).to_have_text(request_id)
    other = "amazon.nova-lite-v1:0"
    page.locator("input[name=replay-model]").fill(other)
    page.get_by_role("button", name="Replay").click()
    result = page.get_by_test_id("replay-result")
    expect(result).to_contain_text("✓ 200")
    result.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(other)
    expect(page.get_by_test_id("call-id")).not_to_have_text(request_id)
    expect(page.get_by_test_id("assembled-text")).to_contain_text("replay me")
    expect(page.get_by_test_id("request-body")).to_contain_text("replay me")


@pytest.mark.llamacpp
def test_a_playground_chat_streams_from_the_real_default_engine(
    page: Page, llama_server: ServerProcess
) -> None:
    open_console(page, llama_server, "playground")
    page.locator("input[name=modelId]").fill("anthropic.claude-3-haiku-20240307-v1:0")
    page.locator("input[name=maxTokens]").fill("24")
    page.locator("textarea[name=prompt]").fill("Say hello in one short sentence.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("pg-status")).to_contain_text("Stop reason", timeout=240_000)
    usage = json.loads(page.get_by_test_id("pg-usage").inner_text())
    assert usage["outputTokens"] > 0 and usage["inputTokens"] > 0
    answer = page.get_by_test_id("messages").locator("li.assistant .text")
    assert answer.inner_text().strip()
    # It was a stream of several text deltas, recorded like any other call.
    page.get_by_role("link", name="Open this call").click()
    deltas = page.get_by_test_id("events").locator("li", has_text="contentBlockDelta")
    expect(deltas.first).to_be_visible()
    assert deltas.count() > 1
    expect(
        page.get_by_text("Engine", exact=True).locator("xpath=following-sibling::dd[1]")
    ).to_have_text("default")


def _post_calls(server: ServerProcess, count: int) -> None:
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

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def test_with_10000_calls_recorded_the_table_renders_a_bounded_number_of_rows(
    page: Page, console_server: ServerProcess
) -> None:
    _post_calls(console_server, 10_000)
    open_console(page, console_server)
    count = page.get_by_test_id("call-count")
    expect(count).to_contain_text("10000 of 10000 calls shown", timeout=120_000)
    rows = page.locator("table.calls tbody tr:not([aria-hidden])")
    assert 0 < rows.count() <= 100
    # Scrolled to the end, the oldest kept call is there and the DOM is still bounded.
    scroller = page.get_by_test_id("calls-scroll")
    scroller.evaluate("element => { element.scrollTop = element.scrollHeight; }")
    expect(rows.last).to_have_attribute("aria-rowindex", "10001")
    assert rows.count() <= 100
    # Filtering 10,000 rows answers too.
    page.get_by_label("Outcome").select_option("error")
    expect(count).to_contain_text("0 of 10000 calls shown")


def test_a_call_opens_and_becomes_a_scripted_response_with_the_keyboard_alone(
    page: Page, console_server: ServerProcess
) -> None:
    open_console(page, console_server)
    marker = f"keyboard {uuid.uuid4()}"
    request_id, _ = converse_stream(console_server, marker)
    link = f"#/call/{request_id}"
    expect(page.locator(f'a[href="{link}"]')).to_be_visible()
    page.locator("body").focus()
    for _ in range(60):  # Tab through the page (skip link, navigation, filters) to the row
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == link:
            break
    else:
        pytest.fail("the call's row link was never reached with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("call-id")).to_have_text(request_id)
    button = page.get_by_role("button", name="Make a scripted response from this answer")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Added scripted response")).to_be_visible()
    # The next ConverseStream call to that model gets the recorded answer, whatever it asks.
    response = client(console_server).converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "something else"}]}]
    )
    text = "".join(
        event["contentBlockDelta"]["delta"].get("text", "")
        for event in response["stream"]
        if "contentBlockDelta" in event
    )
    assert text == f"Echo: {marker}"


def test_a_quota_counter_moves_on_the_resources_page_after_a_boto3_call(
    page: Page, console_server: ServerProcess
) -> None:
    open_console(page, console_server, "resources")
    table = page.get_by_test_id("quota-table-0")
    expect(table).to_contain_text("No calls counted yet.")
    client(console_server).converse(
        modelId=QUOTA_MODEL, messages=[{"role": "user", "content": [{"text": "count me"}]}]
    )
    # The page refreshes the counters every 2 s: the bucket of 1 request per minute is empty
    # (it takes a minute to refill one request, so "0 of 1" shows for that long).
    row = table.get_by_test_id("quota-counter")
    expect(row).to_have_count(1)
    expect(row.locator("td").first).to_have_text(QUOTA_MODEL)
    expect(row.get_by_test_id("requests-left")).to_have_text("0 of 1/min")
    expect(row.get_by_test_id("streams-in-flight")).to_have_text("0")
