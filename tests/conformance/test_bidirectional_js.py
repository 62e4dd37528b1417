"""InvokeModelWithBidirectionalStream with the JS v3 SDK under Node, over h2c.

The harness sends the input events on a schedule (`delayMs`), as a microphone would, and prints
every output event with its arrival time. A spoken question must come back transcribed and
answered in speech at the requested rate; talking over the answer must interrupt it; bad input
and a client that goes away must leave the server serving.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from outcrop.speech.audio import duration_s
from outcrop.testing import responses
from tests.conformance.jsclient import run_js
from tests.conformance.speech_fixtures import LONG_SONIC, SONIC
from tests.support.server import ServerProcess
from tests.support.speech import (
    INTERRUPTED,
    NovaInput,
    NovaOutput,
    assert_speech_at,
    check_linked,
    pieces,
    silence,
    spoken,
    words,
)

pytestmark = pytest.mark.node

QUESTION = "What is the capital of France?"
SECOND = "Tell me about the weather."


def stream_command(
    server: ServerProcess, model: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    inputs = [e if "delayMs" in e else {"json": e} for e in events]
    return {"endpoint": server.url, "operation": "InvokeModelWithBidirectionalStream",
            "modelId": model, "inputEvents": inputs}  # fmt: skip


def microphone(nova: NovaInput, name: str, pcm: bytes, live: bool = False) -> list[dict[str, Any]]:
    """audioInput events of 32 ms; `live` sends them in real time (a microphone), else at once."""
    return [{"json": nova.audio(name, p), "delayMs": 32 if live else 0} for p in pieces(pcm)]


def output(run: Any) -> NovaOutput:
    return NovaOutput([e["data"]["event"] for e in run.events if e["event"] == "chunk"])


def test_spoken_question_over_h2c(speech_server: ServerProcess) -> None:
    nova = NovaInput()
    events = [
        *nova.opening(rate=16000), nova.audio_start("mic"),
        *microphone(nova, "mic", spoken(QUESTION) + silence(1.0)),
        *microphone(nova, "mic", silence(3.0), live=True),
        nova.content_end("mic"), nova.prompt_end(), nova.session_end(),
    ]  # fmt: skip
    run = run_js(stream_command(speech_server, SONIC, events), timeout=90)
    done = run.ok()
    assert done["response"]["headers"]["content-type"] == "application/vnd.amazon.eventstream"
    out = output(run)
    check_linked(out)
    (transcript,) = out.texts("USER")
    assert words(QUESTION) <= words(transcript)
    answer = " ".join(out.texts("ASSISTANT", "FINAL"))
    heard = assert_speech_at(out.audio(), 16000, answer)
    assert "france" in heard
    assert 1.5 < duration_s(out.audio(), 16000) < 4.0
    assert out.names[-1] == "completionEnd"


def test_a_queued_answer_is_spoken(speech_server: ServerProcess) -> None:
    nova = NovaInput()
    events = [
        *nova.opening(rate=16000), nova.audio_start("mic"),
        *microphone(nova, "mic", spoken(QUESTION) + silence(1.0)),
        *microphone(nova, "mic", silence(3.0), live=True),
        nova.content_end("mic"), nova.prompt_end(), nova.session_end(),
    ]  # fmt: skip
    with responses(speech_server.url) as queued:
        queued.queue("The queue says hello.", model=SONIC)
        run = run_js(stream_command(speech_server, SONIC, events), timeout=90)
    run.ok()
    out = output(run)
    check_linked(out)
    assert " ".join(out.texts("ASSISTANT", "FINAL")) == "The queue says hello."
    heard = assert_speech_at(out.audio(), 16000, "The queue says hello.")
    assert "hello" in words(heard), heard


def test_talking_over_the_answer_interrupts_it(speech_server: ServerProcess) -> None:
    nova = NovaInput()
    events = [
        *nova.opening(), nova.audio_start("mic"),
        *microphone(nova, "mic", spoken(QUESTION) + silence(1.0)),
        *microphone(nova, "mic", silence(6.0), live=True),  # the long answer is playing
        *microphone(nova, "mic", spoken(SECOND) + silence(1.2)),
        *microphone(nova, "mic", silence(1.0), live=True),
        nova.content_end("mic"), nova.prompt_end(), nova.session_end(),
    ]  # fmt: skip
    run = run_js(stream_command(speech_server, LONG_SONIC, events), timeout=120)
    run.ok()
    out = output(run)
    check_linked(out)
    assert [e["stopReason"] for e in out.named("completionEnd")] == ["INTERRUPTED", "END_TURN"]
    assert "INTERRUPTED" in out.stop_reasons("AUDIO")
    assert INTERRUPTED in out.texts("ASSISTANT")
    first, second = out.completions()
    assert 1.0 < duration_s(out.audio(first), 24000) < 12.0
    assert {"weather"} <= words(out.texts("USER")[1])
    assert duration_s(out.audio(second), 24000) > 2.0


def test_events_before_session_start_get_a_validation_exception(
    speech_server: ServerProcess,
) -> None:
    nova = NovaInput()
    run = run_js(stream_command(speech_server, SONIC, [nova.prompt_start()]))
    error = run.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert error["message"] == "The first event must be sessionStart, not promptStart."
    assert error["$fault"] == "client"


def test_a_model_without_speech_input_is_refused(speech_server: ServerProcess) -> None:
    nova = NovaInput()
    command = stream_command(speech_server, "anthropic.claude-3-haiku-20240307-v1:0",
                             nova.opening())  # fmt: skip
    run = run_js({**command, "maxAttempts": 1})
    assert run.error is not None
    assert run.error["name"] == "ValidationException"
    assert run.error["$metadata"]["httpStatusCode"] == 400


def test_client_going_away_releases_the_session(speech_server: ServerProcess) -> None:
    nova = NovaInput()
    events = [
        *nova.opening(), nova.audio_start("mic"),
        *microphone(nova, "mic", spoken(QUESTION) + silence(1.0)),
        *microphone(nova, "mic", silence(10.0), live=True),
    ]  # fmt: skip
    command = {**stream_command(speech_server, LONG_SONIC, events), "abortAfterEvents": 12}
    run = run_js(command, timeout=90)
    assert run.final.get("aborted") or run.error is not None
    assert any(e["data"]["event"].get("audioOutput") for e in run.events)
    deadline = time.monotonic() + 15
    while speech_server.health()[1]["speech"]["sessions"] != 0:  # type: ignore[index]
        assert time.monotonic() < deadline, speech_server.health()
        time.sleep(0.2)
    # And the server goes on serving sessions.
    again = NovaInput()
    run = run_js(stream_command(speech_server, SONIC, [
        *again.opening(), *again.text("USER", "Still there?", interactive=True),
        again.prompt_end(), again.session_end()]))  # fmt: skip
    run.ok()
    assert output(run).texts("ASSISTANT", "FINAL") == ["Echo: Still there?"]
