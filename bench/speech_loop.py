"""The voice loop: end of the user's speech to the first byte of the spoken answer, and the
real-time factors of speech recognition and synthesis on this machine.

(a) In-process, side by side in one run: Whisper tiny.en (faster-whisper, int8, 1 thread)
transcribing spoken questions, and the Piper voice synthesizing answers; the real-time factor is
compute time / audio duration (below 1: faster than real time).
(b) Through `outcrop serve` (scripted echo engine, so the language model costs nothing and the
loop's own cost shows), with aws-sdk-bedrock-runtime over TLS: a spoken question is streamed in
32 ms pieces in real time, as a microphone does, followed by live silence; the latency is from
the moment the last piece holding speech was sent to the arrival of the first audioOutput. It
includes the endpointing wait (700 ms of silence at MEDIUM sensitivity, 500 ms at HIGH), then
recognition, the first sentence's synthesis and the transport. Results:
bench/results/speech_loop.json and .md.

Run: .venv/bin/python bench/speech_loop.py [--trials 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conformance.smithy_bidi import SmithyStream
from tests.support.server import running_server
from tests.support.speech import NovaInput, pieces, silence, spoken
from tests.support.tls import self_signed

from outcrop.speech.asr import Recognizer
from outcrop.speech.audio import duration_s, pcm16_to_float
from outcrop.speech.tts import Synthesizer

RESULTS = Path(__file__).resolve().parent / "results"
QUESTIONS = [
    "What is the capital of France?",
    "How far away is the moon from the earth?",
    "Can you tell me a short story about a dog?",
]
ANSWERS = [
    "The capital of France is Paris.",
    "The moon is about three hundred and eighty four thousand kilometers away from the earth.",
    "Once upon a time, a small dog found a red ball in the park and played with it all day.",
]
CONFIG = """
[engines.default]
type = "scripted"

[speech]
input_timeout_s = 30
"""


def real_time_factors(rounds: int) -> dict[str, Any]:
    recognizer, synthesizer = Recognizer(workers=1), Synthesizer()
    recognizer.load()
    synthesizer.load()
    asr: list[float] = []
    tts: list[float] = []
    for _ in range(rounds):
        for question, answer in zip(QUESTIONS, ANSWERS, strict=True):
            pcm = spoken(question)
            started = time.perf_counter()
            recognizer.transcribe(pcm16_to_float(pcm))
            asr.append((time.perf_counter() - started) / duration_s(pcm, 16000))
            started = time.perf_counter()
            samples = synthesizer.synthesize(answer)
            elapsed = time.perf_counter() - started
            tts.append(elapsed / (len(samples) / synthesizer.sample_rate))
    return {
        "asr_rtf_median": statistics.median(asr),
        "asr_rtf_all": asr,
        "tts_rtf_median": statistics.median(tts),
        "tts_rtf_all": tts,
    }


def speech_end_offset(pcm: bytes) -> float:
    """Seconds from the clip's start to its last clearly voiced sample."""
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > 1000)
    return float(loud[-1]) / 16000


async def one_turn(url: str, ca: Path, question: str, sensitivity: str) -> dict[str, float]:
    nova = NovaInput()
    pcm = spoken(question)
    speech_end = speech_end_offset(pcm)
    opening = [
        nova.session_start(turnDetectionConfiguration={"endpointingSensitivity": sensitivity}),
        nova.prompt_start(rate=24000),
        *nova.text("SYSTEM", "You are brief."),
        nova.audio_start("mic"),
    ]
    async with SmithyStream(url, ca) as stream:
        await stream.send_all(opening)
        started = time.monotonic()
        sent = 0.0
        ended_at: float | None = None
        for piece in pieces(pcm + silence(6.0)):
            # Real time: each 32 ms piece goes out when a microphone would have it.
            await asyncio.sleep(max(0.0, started + sent - time.monotonic()))
            await stream.send(nova.audio("mic", piece))
            sent += duration_s(piece, 16000)
            if ended_at is None and sent >= speech_end:
                ended_at = time.monotonic()
            if any("audioOutput" in e for e in stream.events):
                break
        first_audio = await stream.wait_for("audioOutput", within=30)
        await stream.wait_for("completionEnd", within=30)
        await stream.send(nova.content_end("mic"))
        await stream.send(nova.prompt_end())
        await stream.send(nova.session_end())
        await stream.close_input()
        await stream.wait_end(30)
    assert ended_at is not None
    return {"latency_s": first_audio - ended_at}


async def loop_latency(url: str, ca: Path, trials: int) -> dict[str, Any]:
    await one_turn(url, ca, QUESTIONS[0], "MEDIUM")  # loads the speech models
    out: dict[str, Any] = {}
    for sensitivity in ("MEDIUM", "HIGH"):
        runs = [
            (await one_turn(url, ca, QUESTIONS[i % len(QUESTIONS)], sensitivity))["latency_s"]
            for i in range(trials)
        ]
        out[sensitivity] = {"median_s": statistics.median(runs), "all_s": runs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with tempfile.TemporaryDirectory() as folder:
        cert, key = self_signed(Path(folder))
        config = Path(folder) / "outcrop.toml"
        config.write_text(CONFIG)
        with running_server(["--config", str(config)], tls=(cert, key)) as server:
            loop = asyncio.run(loop_latency(server.tls_url, cert, args.trials))
    factors = real_time_factors(args.rounds)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "end_of_speech_to_first_audio": loop,
        "endpointing_wait_s": {"MEDIUM": 0.7, "HIGH": 0.5},
        "real_time_factors": factors,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speech_loop.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Voice loop (bench/speech_loop.py)",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        "scripted echo engine, aws-sdk-bedrock-runtime over TLS, audio streamed in real time.",
        "",
        "| endpointing | end of speech → first audio byte (median) | trials |",
        "|---|---|---|",
    ]
    for sensitivity, row in loop.items():
        lines.append(
            f"| {sensitivity} (waits {results['endpointing_wait_s'][sensitivity]} s of silence)"
            f" | {row['median_s']:.2f} s | {', '.join(f'{v:.2f}' for v in row['all_s'])} |"
        )
    lines += [
        "",
        "| model | real-time factor (median; compute / audio duration) |",
        "|---|---|",
        "| ASR: Whisper tiny.en int8, faster-whisper, 1 thread | "
        f"{factors['asr_rtf_median']:.3f} |",
        f"| TTS: Piper en_US-joe-medium, onnxruntime, 1 thread | {factors['tts_rtf_median']:.3f} |",
        "",
    ]
    (RESULTS / "speech_loop.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
