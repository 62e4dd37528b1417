"""The console against a server in auth mode verify: the page loads without credentials, shows
nothing until a Bedrock API key is typed into it, then works with that key alone (sent as a
bearer token over the TLS listener; the page keeps it in sessionStorage, sets no cookie)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from playwright.sync_api import Browser, expect

from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.console

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY = "bedrock-api-key-console-test"
CONFIG = f"""
[auth]
mode = "verify"
api_keys = [{{ key = "{KEY}", principal = "bot" }}]
[[auth.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "{SECRET}"
principal = "alice"
[principals.alice]
policies = ["all"]
[principals.bot]
policies = ["all"]
[policies.all]
Statement = [{{ Effect = "Allow", Action = "bedrock:*", Resource = "*" }}]
[admin]
faults_api = true
"""


@pytest.fixture
def verify_server(tmp_path: Path, tls_files: tuple[Path, Path]) -> Iterator[ServerProcess]:
    config = tmp_path / "outcrop.toml"
    config.write_text(CONFIG)
    args = ["--engine", "scripted", "--config", str(config)]
    with running_server(args, tls=tls_files) as server:
        yield server


def test_in_verify_mode_the_console_works_with_an_api_key_typed_once(
    browser: Browser, verify_server: ServerProcess
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{verify_server.tls_url}/_outcrop/console#/calls")
    # The page itself loads; its API calls are refused without a key.
    offline = page.get_by_role("status").filter(has_text="Offline")
    expect(offline).to_contain_text(
        "Missing Authentication Token (auth mode verify: enter an API key)"
    )
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Use").click()
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    response = boto3.client(
        "bedrock-runtime",
        endpoint_url=verify_server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
    ).converse(
        modelId="amazon.nova-lite-v1:0",
        messages=[{"role": "user", "content": [{"text": "hello"}]}],
    )
    request_id = response["ResponseMetadata"]["RequestId"]
    link = page.locator(f'a[href="#/call/{request_id}"]')
    expect(link).to_be_visible()
    expect(page.locator("tr", has=link)).to_contain_text("user/alice")
    # The rules page works with the same key (the fault API is on in this configuration).
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_role("heading", name="Fault rules")).to_be_visible()
    expect(page.get_by_text("None in force.").first).to_be_visible()
    assert context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('outcrop.console.token')") == KEY
    context.close()
