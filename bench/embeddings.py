"""Embedding cost: through Outcrop (boto3 InvokeModel over loopback) vs the engine in-process.

Side by side in one run, alternating, several rounds: the same texts are embedded (a) by
`BertEmbedder.embed_sync` in this process and (b) by `outcrop serve --engine scripted` as a
process, called with boto3 — Titan Text Embeddings V2 (one text per call, as Titan takes) and
Cohere Embed v3 (96 texts per call, its maximum). The ratio server / in-process is the cost of
HTTP, SigV4-signed boto3 calls, JSON and the vector shaping. Results:
bench/results/embeddings.json and .md.

Run: .venv/bin/python bench/embeddings.py [--texts 96] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import running_server

from outcrop.engines.embeddings import BertEmbedder
from outcrop.types import EmbeddingRequest

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "granite",
    "basalt",
    "quarry",
    "sediment",
    "fold",
    "fault",
    "magma",
    "crystal",
    "erosion",
    "strata",
]


def texts(n: int) -> list[str]:
    """Sentences of 8 to 30 words, deterministic."""
    return [
        " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8 + (i * 5) % 23))
        for i in range(n)
    ]


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = texts(args.texts)
    singles = batch[:16]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    engine = BertEmbedder()
    engine.embed_sync(EmbeddingRequest(tuple(batch)))  # load and warm up
    rounds: list[dict[str, Any]] = []
    with running_server(["--engine", "scripted"]) as server:
        rt = boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )

        def cohere() -> None:
            body = json.dumps({"texts": batch, "input_type": "search_document"})
            rt.invoke_model(modelId="cohere.embed-english-v3", body=body)["body"].read()

        def titan() -> None:
            for text in singles:
                body = json.dumps({"inputText": text})
                rt.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=body)["body"].read()

        cohere()  # warm the server's model
        for _ in range(args.rounds):
            round_ = {
                "batch_inprocess_s": timed(
                    lambda: engine.embed_sync(EmbeddingRequest(tuple(batch)))
                ),
                "batch_outcrop_s": timed(cohere),
                "singles_inprocess_s": timed(
                    lambda: [engine.embed_sync(EmbeddingRequest((t,))) for t in singles]
                ),
                "singles_outcrop_s": timed(titan),
            }
            rounds.append(round_)

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    summary = {
        "batch_texts": len(batch),
        "batch_inprocess_texts_per_s": len(batch) / median("batch_inprocess_s"),
        "batch_outcrop_texts_per_s": len(batch) / median("batch_outcrop_s"),
        "batch_ratio_outcrop_over_inprocess": median("batch_outcrop_s")
        / median("batch_inprocess_s"),
        "single_inprocess_ms": 1000 * median("singles_inprocess_s") / len(singles),
        "single_outcrop_ms": 1000 * median("singles_outcrop_s") / len(singles),
        "single_ratio_outcrop_over_inprocess": median("singles_outcrop_s")
        / median("singles_inprocess_s"),
    }
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rounds": rounds,
        "summary": summary,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embeddings.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Embeddings: Outcrop (boto3 over loopback) vs the engine in-process",
        "",
        f"Median of {args.rounds} alternating rounds; `python bench/embeddings.py`.",
        "",
        "| case | in-process | through Outcrop | ratio |",
        "|---|---|---|---|",
        f"| Cohere v3, {len(batch)} texts per call | "
        f"{summary['batch_inprocess_texts_per_s']:.0f} texts/s | "
        f"{summary['batch_outcrop_texts_per_s']:.0f} texts/s | "
        f"{summary['batch_ratio_outcrop_over_inprocess']:.2f}× time |",
        f"| Titan V2, 1 text per call | {summary['single_inprocess_ms']:.1f} ms | "
        f"{summary['single_outcrop_ms']:.1f} ms | "
        f"{summary['single_ratio_outcrop_over_inprocess']:.2f}× time |",
        "",
    ]
    (RESULTS / "embeddings.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
