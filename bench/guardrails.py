"""Benchmark: the latency a guardrail adds, per request and per streamed chunk.

1. Through the server. One `outcrop serve` process (scripted engine, no delay, a fixed answer of
   about 120 words with an e-mail address, a phone number and an account number in it) serves
   the same Claude InvokeModel and InvokeModelWithResponseStream requests without a guardrail,
   with a rule-only guardrail (every content filter, a word list, the profanity list, six PII
   types, a regex) and with the same guardrail plus two denied topics (the embedding
   classifier); streams synchronously and asynchronously. Variants alternate request by request
   over keep-alive HTTP/1.1 connections, several rounds, in one run. Reported: median request
   latency, its increase over no guardrail, and the increase per streamed chunk (the stream's
   added time divided by its chunks), plus time to the first chunk.
2. In process: one assessment (`guardrails.assess`) of the prompt and of the answer, per policy
   kind, in microseconds, to show where the time goes.

Results: bench/results/guardrails.json and .md.
Run: .venv/bin/python bench/guardrails.py [--requests 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
from tests.support.server import running_server  # noqa: E402

from outcrop.engines.embeddings import BertEmbedder  # noqa: E402
from outcrop.guardrails.assess import Segment, assess  # noqa: E402
from outcrop.guardrails.model import Definition  # noqa: E402
from outcrop.guardrails.topics import TopicClassifier  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROMPT = "Please summarise our support policy for a customer who wrote in yesterday."
ANSWER = (
    "Thank you for reaching out. Our support policy is simple: every request gets an answer "
    "within one business day, and urgent outages are handled around the clock by the on-call "
    "team. If you need to follow up, write to support.team@example.com or call (206) 555-0100 "
    "and mention your account 1234561666 so we can find your history quickly. Refunds are "
    "processed within five days once approved, and you can track them on the billing page. "
    "We never ask for your password by e-mail, and we will always sign our messages with the "
    "name of the engineer who handled your case. Let us know if anything is unclear, and we "
    "will be glad to walk you through the details on a short call at a time that suits you."
)
RULES: dict[str, Any] = {
    "name": "bench-rules",
    "blockedInputMessaging": "Blocked.",
    "blockedOutputsMessaging": "Blocked.",
    "contentPolicyConfig": {
        "filtersConfig": [
            {"type": t, "inputStrength": "HIGH", "outputStrength": "HIGH"}
            for t in ("HATE", "INSULTS", "SEXUAL", "VIOLENCE", "MISCONDUCT")
        ]
        + [{"type": "PROMPT_ATTACK", "inputStrength": "HIGH", "outputStrength": "NONE"}]
    },
    "wordPolicyConfig": {
        "wordsConfig": [{"text": "competitor bank"}, {"text": "secret project"}],
        "managedWordListsConfig": [{"type": "PROFANITY"}],
    },
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [
            {"type": t, "action": "ANONYMIZE"}
            for t in ("EMAIL", "PHONE", "NAME", "ADDRESS", "CREDIT_DEBIT_CARD_NUMBER")
        ]
        + [{"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"}],
        "regexesConfig": [
            {"name": "Account Number", "pattern": r"\b\d{6}\d{4}\b", "action": "ANONYMIZE"}
        ],
    },
}
TOPICS = {
    **RULES,
    "name": "bench-topics",
    "topicPolicyConfig": {
        "topicsConfig": [
            {
                "name": "Investment advice",
                "definition": "Personalized recommendations about buying or selling stocks.",
                "examples": ["Should I buy Tesla stock?", "Is bitcoin a good investment?"],
                "type": "DENY",
            },
            {
                "name": "Medical advice",
                "definition": "Diagnosing illnesses or recommending medication doses.",
                "examples": ["What medicine should I take for my chest pain?"],
                "type": "DENY",
            },
        ]
    },
}
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value)


def config(state_dir: str) -> str:
    lines = [
        "[engines.default]",
        'type = "scripted"',
        f"text = {json.dumps(ANSWER)}",
        "",
        "[guardrails]",
        f"state_dir = {json.dumps(state_dir)}",
        "",
    ]
    for gid, spec in (("benchrules", RULES), ("benchtopics", TOPICS)):
        lines.append("[[guardrails.define]]")
        lines += [f"{k} = {_inline(v)}" for k, v in {"id": gid, **spec}.items()]
        lines.append("")
    return "\n".join(lines)


VARIANTS: dict[str, dict[str, Any]] = {
    "no guardrail": {},
    "rules": {"guardrail": "benchrules"},
    "rules + topics": {"guardrail": "benchtopics"},
    "rules, async stream": {"guardrail": "benchrules", "mode": "ASYNCHRONOUS"},
}


def request_for(
    url: str, variant: dict[str, Any], streaming: bool
) -> tuple[str, dict[str, str], bytes]:
    body: dict[str, Any] = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if "mode" in variant:
        body["amazon-bedrock-guardrailConfig"] = {"streamProcessingMode": variant["mode"]}
    data = json.dumps(body).encode()
    operation = "invoke-with-response-stream" if streaming else "invoke"
    headers = {"Content-Type": "application/json"}
    if "guardrail" in variant:
        headers["X-Amzn-Bedrock-GuardrailIdentifier"] = variant["guardrail"]
        headers["X-Amzn-Bedrock-GuardrailVersion"] = "DRAFT"
    request = AWSRequest(
        method="POST",
        url=f"{url}/model/{quote(MODEL, safe='')}/{operation}",
        data=data,
        headers=headers,
    )
    SigV4Auth(CREDENTIALS, "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    out = {k: v if isinstance(v, str) else v.decode() for k, v in prepared.headers.items()}
    return urlsplit(prepared.url).path, out, data


def timed_call(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str], data: bytes
) -> tuple[float, float, int]:
    """(seconds to the end, seconds to the first body byte, event-stream frames)."""
    started = time.perf_counter()
    conn.request("POST", path, body=data, headers=headers)
    response = conn.getresponse()
    first = response.read(1)
    first_at = time.perf_counter() - started
    rest = response.read()
    total = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {(first + rest)[:300]!r}")
    frames = 0
    if response.getheader("Content-Type") == "application/vnd.amazon.eventstream":
        buffer = EventStreamBuffer()
        buffer.add_data(first + rest)
        frames = sum(1 for _ in buffer)
    return total, first_at, frames


def server_side(requests: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcrop.toml"
        path.write_text(config(tmp))
        with running_server(["--config", str(path)]) as server:
            parts = urlsplit(server.url)
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
            results: dict[str, Any] = {}
            for streaming in (False, True):
                kind = "stream" if streaming else "invoke"
                names = [n for n in VARIANTS if streaming or "async" not in n]
                prepared = {n: request_for(server.url, VARIANTS[n], streaming) for n in names}
                for n in names:  # warm-up (loads the embedding model for the topics)
                    for _ in range(3):
                        timed_call(conn, *prepared[n])
                samples: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
                for _ in range(rounds):
                    for _ in range(requests):
                        for n in names:
                            samples[n].append(timed_call(conn, *prepared[n]))
                base = statistics.median(s[0] for s in samples["no guardrail"])
                base_first = statistics.median(s[1] for s in samples["no guardrail"])
                for n in names:
                    total = statistics.median(s[0] for s in samples[n])
                    first = statistics.median(s[1] for s in samples[n])
                    frames = statistics.median(s[2] for s in samples[n])
                    row = {
                        "median_ms": round(total * 1000, 3),
                        "added_ms": round((total - base) * 1000, 3),
                        "ratio": round(total / base, 2),
                    }
                    if streaming:
                        row["first_chunk_ms"] = round(first * 1000, 3)
                        row["first_chunk_added_ms"] = round((first - base_first) * 1000, 3)
                        row["frames"] = frames
                        row["added_ms_per_chunk"] = round((total - base) * 1000 / frames, 4)
                    results[f"{kind}: {n}"] = row
            conn.close()
    return results


def in_process(repeats: int) -> dict[str, float]:
    """Microseconds per assessment, per policy kind (topics include the embedding)."""
    kinds = {
        "content filters (6)": {"contentPolicyConfig": RULES["contentPolicyConfig"]},
        "word filters + profanity": {"wordPolicyConfig": RULES["wordPolicyConfig"]},
        "PII (6 types) + regex": {
            "sensitiveInformationPolicyConfig": RULES["sensitiveInformationPolicyConfig"]
        },
        "all PII types (31)": {
            "sensitiveInformationPolicyConfig": {
                "piiEntitiesConfig": [
                    {"type": t, "action": "ANONYMIZE"}
                    for t in __import__("outcrop.guardrails.pii", fromlist=["x"]).PII_TYPES
                ]
            }
        },
        "rules (all of the above but 31 PII)": {
            k: v for k, v in RULES.items() if k.endswith("Config")
        },
    }
    base = {"name": "b", "blockedInputMessaging": "x", "blockedOutputsMessaging": "x"}
    out: dict[str, float] = {}
    for label, policies in kinds.items():
        definition = Definition.parse({**base, **policies})
        for side, text, direction in (("prompt", PROMPT, "INPUT"), ("answer", ANSWER, "OUTPUT")):
            assess(definition, [Segment(text)], direction)  # type: ignore[arg-type]
            started = time.perf_counter()
            for _ in range(repeats):
                assess(definition, [Segment(text)], direction)  # type: ignore[arg-type]
            out[f"{label}, {side}"] = round((time.perf_counter() - started) / repeats * 1e6, 1)
    topics = Definition.parse({**base, "topicPolicyConfig": TOPICS["topicPolicyConfig"]}).topics

    async def topic_cost(text: str) -> float:
        classifier = TopicClassifier(BertEmbedder())
        await classifier.scores(topics, [text])
        started = time.perf_counter()
        for _ in range(max(3, repeats // 50)):
            await classifier.scores(topics, [text])
        return (time.perf_counter() - started) / max(3, repeats // 50) * 1e6

    out["denied topics (2, embedding classifier), prompt"] = round(
        asyncio.run(topic_cost(PROMPT)), 1
    )
    out["denied topics (2, embedding classifier), answer"] = round(
        asyncio.run(topic_cost(ANSWER)), 1
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    server = server_side(args.requests, args.rounds)
    local = in_process(args.repeats)
    result = {
        "machine": MACHINE,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "requests_per_variant": args.requests * args.rounds,
        "answer_chars": len(ANSWER),
        "server": server,
        "in_process_us": local,
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "guardrails.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Guardrail latency",
        "",
        f"Machine: {MACHINE}, load average {result['load_average_after']} at the end (a shared "
        "machine: absolute numbers move with its load; the variants alternate, so the "
        f"differences are comparable). `python bench/guardrails.py --requests {args.requests} "
        f"--rounds {args.rounds} --repeats {args.repeats}`; {args.requests * args.rounds} "
        "requests per variant, variants alternating request by request over one keep-alive "
        f"HTTP/1.1 connection; scripted engine, no delay, a {len(ANSWER)}-character answer "
        "(stream chunks are checked every 1,000 characters, so this answer is one check).",
        "",
        "## Through the server (medians)",
        "",
        "| call | median ms | added ms | ratio | first chunk ms (added) | frames "
        "| added ms per chunk |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in server.items():
        first = (
            f"{row['first_chunk_ms']} ({row['first_chunk_added_ms']:+})" if "frames" in row else ""
        )
        lines.append(
            f"| {name} | {row['median_ms']} | {row['added_ms']:+} | {row['ratio']} | {first} | "
            f"{row.get('frames', '')} | {row.get('added_ms_per_chunk', '')} |"
        )
    lines += ["", "## One assessment in process (µs)", "", "| policies, text | µs |", "|---|---|"]
    lines += [f"| {name} | {us} |" for name, us in local.items()]
    (out / "guardrails.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
