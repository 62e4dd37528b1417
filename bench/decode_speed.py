"""The benchmark client's hot path: decoding a streamed response, two ways, in one run.

(a) `outcrop.cli.bench.decode.StreamDecoder`: frames split in Python with zlib's CRC-32, header
blocks parsed once by botocore and cached, payloads decoded with orjson.
(b) The straightforward way: botocore's `EventStreamBuffer` and the standard `json` module.
Both decode the same 69-frame Claude response (64 text deltas) delivered in one read, in 4 KiB
reads and frame by frame, and count the same text events. Results: bench/results/decode_speed.md.

Run: .venv/bin/python bench/decode_speed.py
"""

from __future__ import annotations

import base64
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from outcrop.cli.bench.decode import TEXT, Operation, StreamDecoder  # noqa: E402
from outcrop.cli.native import chunk_text  # noqa: E402
from outcrop.wire import eventstream  # noqa: E402

TOKENS = 64


def response() -> list[bytes]:
    objects: list[dict[str, object]] = [
        {"type": "message_start", "message": {"role": "assistant", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    objects += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " w"}}
        for _ in range(TOKENS)
    ]
    objects += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"outputTokenCount": 64}},
    ]
    return [eventstream.chunk_frame(o) for o in objects]


def outcrop_decoder(reads: list[bytes]) -> int:
    decoder = StreamDecoder(Operation.invoke)
    return sum(1 for data in reads for event in decoder.feed(data) if event == TEXT)


def botocore_buffer(reads: list[bytes]) -> int:
    buffer = EventStreamBuffer()
    count = 0
    for data in reads:
        buffer.add_data(data)
        for message in buffer:
            if message.headers.get(":message-type") != "event":
                continue
            chunk = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
            if chunk_text(chunk):
                count += 1
    return count


def per_frame_us(decode: Callable[[list[bytes]], int], reads: list[bytes], frames: int) -> float:
    assert decode(reads) == TOKENS
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(200):
            decode(reads)
        samples.append((time.perf_counter() - started) / 200 / frames * 1e6)
    return statistics.median(samples)


def main() -> None:
    frames = response()
    whole = b"".join(frames)
    splits = {
        "one read": [whole],
        "4 KiB reads": [whole[i : i + 4096] for i in range(0, len(whole), 4096)],
        "one read per frame": frames,
    }
    lines = [
        "# Decoding a streamed response: the bench decoder vs botocore's EventStreamBuffer",
        "",
        "Command: `.venv/bin/python bench/decode_speed.py`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()} (shared cores). "
        f"{len(frames)} frames ({TOKENS} text deltas), {len(whole)} bytes; median of 7.",
        "",
        "| delivery | bench decoder µs/frame | EventStreamBuffer + json µs/frame | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, reads in splits.items():
        ours = per_frame_us(outcrop_decoder, reads, len(frames))
        theirs = per_frame_us(botocore_buffer, reads, len(frames))
        lines.append(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.1f}× |")
    out = REPO / "bench" / "results" / "decode_speed.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
