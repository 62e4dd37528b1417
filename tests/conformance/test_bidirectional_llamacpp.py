"""A speech session answered by the real language model (llama.cpp, the embedded Gemma 3 270M),
through the JS v3 SDK over h2c: the spoken answer must be what the model wrote, spoken."""

from __future__ import annotations

import pytest

from outcrop.speech.audio import duration_s
from tests.conformance.jsclient import run_js
from tests.conformance.speech_fixtures import SONIC
from tests.support.server import ServerProcess
from tests.support.speech import (
    NovaInput,
    NovaOutput,
    check_linked,
    pieces,
    silence,
    spoken,
    transcribe,
    words,
)

pytestmark = [pytest.mark.llamacpp, pytest.mark.node]


def test_the_real_model_answers_a_spoken_question(llama_server: ServerProcess) -> None:
    nova = NovaInput()
    events = [
        nova.session_start(max_tokens=40), nova.prompt_start(rate=16000),
        *nova.text("SYSTEM", "You answer in one short sentence."),
        nova.audio_start("mic"),
        *[nova.audio("mic", p) for p in pieces(spoken("What is the capital of France?"))],
        *[nova.audio("mic", p) for p in pieces(silence(1.0))],
        nova.content_end("mic"), nova.prompt_end(), nova.session_end(),
    ]  # fmt: skip
    command = {"endpoint": llama_server.url, "operation": "InvokeModelWithBidirectionalStream",
               "modelId": SONIC, "inputEvents": [{"json": e} for e in events]}  # fmt: skip
    run = run_js(command, timeout=240)
    run.ok()
    out = NovaOutput([e["data"]["event"] for e in run.events])
    check_linked(out)
    assert {"capital", "france"} <= words(out.texts("USER")[0])
    answer = " ".join(out.texts("ASSISTANT", "FINAL"))
    assert answer.strip()
    audio = out.audio()
    assert duration_s(audio, 16000) > 0.5
    heard = words(transcribe(audio, 16000))
    assert len(heard & words(answer)) >= 0.5 * len(words(answer)), (heard, answer)
    usage = out.named("usageEvent")[-1]["details"]["total"]
    assert usage["output"]["textTokens"] > 0 and usage["input"]["textTokens"] > 0
