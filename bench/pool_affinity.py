"""Prefix affinity of an engine pool, measured as the share of warm prefix-cache hits.

Three llama.cpp servers (`llama-server` on the embedded SmolLM2 model, one thread and two slots
each, prompt cache on) form the `openai` pool of `outcrop serve`. The same workload runs twice,
in one run: with prefix affinity (the default, `affinity_prefix_chars = 2048`) and without it
(`affinity_prefix_chars = 0`: least outstanding requests, ties round-robin). The workload:
`--conversations` multi-turn conversations, each with its own system prompt of about 150
tokens, `--turns` turns each (the answer of one turn is part of the next turn's prompt), sent
with ConverseStream (boto3) by four client threads; turns interleave (a conversation's next turn
joins the back of the queue once its previous turn is answered), so the twelve conversations
take turns on the pool's six slots. Each run uses conversations of its
own, so nothing is cached from the other.

Per request the upstream reports the prompt tokens it took from its prefix cache
(`usage.prompt_tokens_details.cached_tokens`); Outcrop totals them per upstream in
`/_outcrop/health`. A request is a warm hit when at least half its prompt was cached. Reported:
the share of warm hits, the share of cached prompt tokens, the mean time to first token and the
time the whole workload took. The first turn of a conversation cannot be warm, so the best
possible share is (turns - 1) / turns.

Run: .venv/bin/python bench/pool_affinity.py [--conversations 12] [--turns 4]
Results: bench/results/pool_affinity.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.llama_upstreams import llama_upstreams, pool_config  # noqa: E402
from tests.support.server import ServerProcess, running_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
WORKERS = 4
SENTENCES = (
    "Granite forms when magma cools slowly deep below the surface.",
    "Basalt cools quickly at the surface and has very fine grains.",
    "Sandstone is made of sand grains cemented together by silica.",
    "Limestone often holds the fossils of shells and corals.",
    "Marble and slate form from other rocks under heat and pressure.",
)
QUESTIONS = (
    "Which rock is the oldest here?",
    "And the hardest?",
    "Which one would you build with?",
    "Summarise in one line.",
    "Any other rock worth adding?",
    "Thanks, one last tip?",
)


def system_prompt(run: str, conversation: int) -> str:
    body = " ".join(SENTENCES[(conversation + i) % len(SENTENCES)] for i in range(12))
    return f"Run {run}, conversation {conversation}: you are a geology tutor. {body}"


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


@dataclass
class Conversation:
    system: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns_done: int = 0


def ask(rt: Any, conversation: Conversation, ttfts: list[float]) -> None:
    """One turn: the next question, streamed; the answer joins the conversation."""
    question = QUESTIONS[conversation.turns_done % len(QUESTIONS)]
    conversation.messages.append({"role": "user", "content": [{"text": question}]})
    start = time.perf_counter()
    response = rt.converse_stream(
        modelId=MODEL,
        system=[{"text": conversation.system}],
        messages=conversation.messages,
        inferenceConfig={"maxTokens": 12, "temperature": 0},
    )
    text = ""
    first: float | None = None
    for event in response["stream"]:
        if "contentBlockDelta" in event:
            first = first or time.perf_counter() - start
            text += event["contentBlockDelta"]["delta"].get("text", "")
    ttfts.append(first if first is not None else time.perf_counter() - start)
    conversation.messages.append({"role": "assistant", "content": [{"text": text or "OK."}]})
    conversation.turns_done += 1


def cache_totals(server: ServerProcess) -> dict[str, int]:
    _, body = server.health()
    engine: Any = body["engines"]["default"]  # type: ignore[index]
    totals = {"reported": 0, "prompt_tokens": 0, "cached_tokens": 0, "warm": 0}
    for upstream in engine["upstreams"]:
        for key, value in (upstream.get("prefix_cache") or {}).items():
            totals[key] += int(value)
    return totals


def run(workdir: Path, urls: list[str], name: str, affinity: bool, args: Any) -> dict[str, Any]:
    config = pool_config(
        workdir / f"{name}.toml", urls, affinity_prefix_chars=2048 if affinity else 0
    )
    with running_server(["--config", str(config), "--quiet"]) as server:
        while not all(u["healthy"] for u in _upstreams(server)):
            time.sleep(0.1)
        # Turns interleave: a conversation's next turn joins the back of the queue when its
        # previous one is answered, as users who read before they reply.
        queue = collections.deque(
            Conversation(system_prompt(name, c)) for c in range(args.conversations)
        )
        lock = threading.Lock()
        ttfts: list[float] = []
        in_progress = [0]

        def worker() -> None:
            rt = client(server)
            while True:
                with lock:
                    if not queue:
                        if in_progress[0] == 0:
                            return
                        conversation = None
                    else:
                        conversation = queue.popleft()
                        in_progress[0] += 1
                if conversation is None:
                    time.sleep(0.05)
                    continue
                ask(rt, conversation, ttfts)
                with lock:
                    in_progress[0] -= 1
                    if conversation.turns_done < args.turns:
                        queue.append(conversation)

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        totals = cache_totals(server)
        per_upstream = [u["requests"] for u in _upstreams(server)]
    requests = args.conversations * args.turns
    return {
        "routing": name,
        "requests": requests,
        "reported": totals["reported"],
        "warm_hits": totals["warm"],
        "warm_share": totals["warm"] / max(totals["reported"], 1),
        "cached_token_share": totals["cached_tokens"] / max(totals["prompt_tokens"], 1),
        "mean_ttft_s": statistics.mean(ttfts),
        "elapsed_s": elapsed,
        "requests_per_upstream": per_upstream,
    }


def _upstreams(server: ServerProcess) -> list[dict[str, Any]]:
    _, body = server.health()
    engine: Any = body["engines"]["default"]  # type: ignore[index]
    return list(engine["upstreams"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, llama_upstreams(Path(tmp), 3, n_ctx=2048) as ups:
        urls = [u.url for u in ups]
        rows = [
            run(Path(tmp), urls, "affinity", True, args),
            run(Path(tmp), urls, "least-outstanding", False, args),
        ]
    result = {
        "conversations": args.conversations,
        "turns": args.turns,
        "best_possible_warm_share": (args.turns - 1) / args.turns,
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
        "3 llama-servers with -t 1, 2 slots each",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pool_affinity.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Engine pool prefix affinity (bench/pool_affinity.py)",
        "",
        f"{args.conversations} conversations x {args.turns} turns, interleaved, "
        f"{WORKERS} client threads, "
        f"{result['machine']}. Best possible warm share: "
        f"{result['best_possible_warm_share']:.0%} (a first turn is never warm).",
        "",
        "| routing | warm hits | warm share | cached prompt tokens | mean TTFT | total time "
        "| requests per upstream |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['routing']} | {row['warm_hits']}/{row['reported']} "
            f"| {row['warm_share']:.0%} | {row['cached_token_share']:.0%} "
            f"| {row['mean_ttft_s']:.2f} s | {row['elapsed_s']:.1f} s "
            f"| {row['requests_per_upstream']} |"
        )
    (RESULTS / "pool_affinity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
