"""`outcrop invoke`: stream a model's answer to the terminal through the AWS SDK (boto3).

The text goes to standard output as each chunk arrives; usage and latency go to standard error
at the end. With `--json` every stream event goes to standard output as one JSON line instead
(the model's decoded chunk objects for InvokeModelWithResponseStream, boto3's event dicts for
ConverseStream). It works against Outcrop and real AWS alike, since it is an ordinary SDK client.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from botocore.exceptions import BotoCoreError, ClientError

from outcrop.cli.aws import CommandError, describe, fail, runtime_client
from outcrop.cli.native import (
    NoDefaultBody,
    StreamUsage,
    chunk_text,
    chunk_usage,
    converse_request,
    converse_text,
    converse_usage,
    default_body,
)

DEFAULT_MAX_TOKENS = 256
"""Enough for a complete short answer (about 190 words) from an instruction-tuned model, and a
bound on how long a model that never ends its turn runs: Gemma 3 270M, a base model, writes
until `max_tokens`, which at the 20-30 tokens/s a small model makes on a CPU is about 10 s
(the former 512 took twice that, and minutes on a busy machine)."""

INVALID_MODEL = "The provided model identifier is invalid."
"""Bedrock's message for a model ID it does not know (services/bedrock_runtime.py)."""
NOT_STREAMING = "The model is unsupported for streaming."
"""Bedrock's message for streaming from a model that does not stream."""


def hint(exc: BaseException) -> str:
    """What to do next, for errors where the AWS message alone does not say."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        if error.get("Code") != "ValidationException":
            return ""
        if error.get("Message") == INVALID_MODEL:
            return " (`outcrop models` lists the model IDs a server serves)"
        if error.get("Message") == NOT_STREAMING:
            return " (`outcrop invoke` streams; `outcrop models` lists the models it can call)"
    return ""


@dataclass(slots=True)
class Outcome:
    """What the client saw of one streamed invocation."""

    usage: StreamUsage | None = None
    first_token_s: float | None = None
    total_s: float = 0.0
    text_pieces: int = 0
    ended_with_newline: bool = True


def stream_native(
    client: Any, model_id: str, body: bytes, out: TextIO, outcome: Outcome, *, as_json: bool
) -> None:
    """InvokeModelWithResponseStream, writing text (or JSON events) to `out` as it arrives."""
    started = time.perf_counter()
    response = client.invoke_model_with_response_stream(
        modelId=model_id, body=body, contentType="application/json", accept="application/json"
    )
    for event in response["body"]:
        chunk_bytes = event.get("chunk", {}).get("bytes")
        if chunk_bytes is None:
            continue
        chunk = json.loads(chunk_bytes)
        text = chunk_text(chunk) if isinstance(chunk, dict) else None
        _emit(outcome, out, as_json, chunk, text, started)
        usage = chunk_usage(chunk) if isinstance(chunk, dict) else None
        if usage is not None:
            outcome.usage = usage
    outcome.total_s = time.perf_counter() - started


def stream_converse(
    client: Any,
    model_id: str,
    request: dict[str, Any],
    out: TextIO,
    outcome: Outcome,
    *,
    as_json: bool,
) -> None:
    """ConverseStream, writing text (or JSON events) to `out` as it arrives."""
    started = time.perf_counter()
    response = client.converse_stream(modelId=model_id, **request)
    for event in response["stream"]:
        _emit(outcome, out, as_json, event, converse_text(event), started)
        usage = converse_usage(event)
        if usage is not None:
            outcome.usage = usage
    outcome.total_s = time.perf_counter() - started


def _emit(
    outcome: Outcome, out: TextIO, as_json: bool, event: object, text: str | None, started: float
) -> None:
    if text and outcome.first_token_s is None:
        outcome.first_token_s = time.perf_counter() - started
    if as_json:
        out.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        out.flush()
    elif text:
        outcome.text_pieces += 1
        out.write(text)
        out.flush()
        outcome.ended_with_newline = text.endswith("\n")


def summary_line(outcome: Outcome) -> str:
    """Usage and latency, as the server reported them and as the client measured them."""
    parts: list[str] = []
    usage = outcome.usage
    if usage is not None and usage.input_tokens is not None:
        parts.append(f"{usage.input_tokens} input tokens")
    if usage is not None and usage.output_tokens is not None:
        parts.append(f"{usage.output_tokens} output tokens")
    if outcome.first_token_s is not None:
        parts.append(f"first token {outcome.first_token_s * 1000:.0f} ms")
    parts.append(f"total {outcome.total_s:.2f} s")
    if usage is not None and usage.output_tokens and outcome.total_s > 0:
        generating = outcome.total_s - (outcome.first_token_s or 0.0)
        if usage.output_tokens > 1 and generating > 0:
            parts.append(f"{(usage.output_tokens - 1) / generating:.1f} tokens/s")
    if usage is not None and usage.latency_ms is not None:
        parts.append(f"server latency {usage.latency_ms} ms")
    return "[" + " · ".join(parts) + "]"


def read_prompt(prompt: str | None, stdin: TextIO) -> str:
    if prompt is not None:
        return prompt
    if stdin.isatty():
        raise CommandError("no prompt: give PROMPT or pipe it on standard input", 2)
    text = stdin.read()
    if not text.strip():
        raise CommandError("no prompt: standard input was empty", 2)
    return text


def load_body(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--body {path}: {exc.strerror}", 2) from None
    except ValueError as exc:
        raise CommandError(f"--body {path}: not JSON: {exc}", 2) from None
    if not isinstance(value, dict):
        raise CommandError(f"--body {path}: must hold a JSON object", 2)
    return value


def invoke(
    model_id: Annotated[str, typer.Argument(help="Model ID, inference profile or ARN.")],
    prompt: Annotated[
        str | None, typer.Argument(help="The prompt (default: read standard input).")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="Endpoint URL (default: AWS_ENDPOINT_URL, else AWS).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile.")] = None,
    converse: Annotated[
        bool, typer.Option("--converse", help="Use ConverseStream instead of a native body.")
    ] = False,
    body: Annotated[
        Path | None,
        typer.Option(
            help="JSON request: the native body, or with --converse the Converse members."
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(min=1, help="Maximum tokens to generate.")
    ] = DEFAULT_MAX_TOKENS,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every stream event as a JSON line.")
    ] = False,
) -> None:
    """Stream a model's answer (InvokeModelWithResponseStream or ConverseStream)."""
    out = sys.stdout
    outcome = Outcome()
    try:
        client = runtime_client(profile, region, endpoint_url)
        if converse:
            request = (
                load_body(body)
                if body is not None
                else converse_request(
                    read_prompt(prompt, sys.stdin),
                    max_tokens,
                    system=system,
                    temperature=temperature,
                )
            )
            request.pop("modelId", None)
            stream_converse(client, model_id, request, out, outcome, as_json=as_json)
        else:
            native = (
                load_body(body)
                if body is not None
                else default_body(
                    model_id,
                    read_prompt(prompt, sys.stdin),
                    max_tokens,
                    system=system,
                    temperature=temperature,
                )
            )
            payload = json.dumps(native).encode()
            stream_native(client, model_id, payload, out, outcome, as_json=as_json)
    except CommandError as exc:
        fail(str(exc), exc.exit_code)
    except NoDefaultBody as exc:
        fail(str(exc), 2)
    except (ClientError, BotoCoreError) as exc:
        _end_line(out, outcome)
        fail(describe(exc) + hint(exc), 1)
    except KeyboardInterrupt:
        _end_line(out, outcome)
        fail("interrupted", 130)
    if not as_json and not outcome.ended_with_newline:
        out.write("\n")
        out.flush()
    typer.echo(summary_line(outcome), err=True)


def _end_line(out: TextIO, outcome: Outcome) -> None:
    """End the answer's last line, so that an error message gets a line of its own."""
    if outcome.ended_with_newline:
        return
    with contextlib.suppress(OSError, ValueError):
        out.write("\n")
        out.flush()
