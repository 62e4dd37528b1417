"""`outcrop bench`: the command line of the load generator (options, wiring, exit codes).

It resolves the endpoint, region and credentials the way boto3 does, sends warm-up requests
(a failing warm-up, e.g. an unknown model ID or bad credentials, ends the command with the AWS
error on one line), runs the plan with a live progress bar on standard error, prints the
results table, and writes `PREFIX.json` and `PREFIX.png`. When `--duration` is up it says so on
standard error and waits for the requests in flight (or, with `--cancel-at-deadline`, cancels
them). Ctrl-C stops the run, and the partial results are still printed and written (exit
status 130).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from outcrop.cli.aws import CommandError, fail, resolve_region, session
from outcrop.cli.bench.decode import Operation, StreamFailed
from outcrop.cli.bench.prompts import PromptFileError, load_prompts
from outcrop.cli.bench.report import RunInfo, document, render, write_json
from outcrop.cli.bench.runner import LiveState, Plan, Runner, RunOutcome
from outcrop.cli.bench.schedule import parse_duration, parse_rate, schedule_length
from outcrop.cli.bench.stats import summarize
from outcrop.cli.native import NoDefaultBody, converse_request, default_body

if TYPE_CHECKING:  # the HTTP client (aiohttp) is imported when a run starts, not with the CLI
    from outcrop.cli.bench.client import Payload, Target

DEFAULT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
DEFAULT_REQUESTS = 100


class ClientKind(StrEnum):
    raw = "raw"
    sdk = "sdk"


class Arrivals(StrEnum):
    uniform = "uniform"
    poisson = "poisson"


def bench(
    model_id: Annotated[str, typer.Argument(help="Model ID, inference profile or ARN.")] = (
        DEFAULT_MODEL
    ),
    endpoint_url: Annotated[
        str | None, typer.Option(help="Endpoint URL (default: AWS_ENDPOINT_URL, else AWS).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile.")] = None,
    converse: Annotated[
        bool,
        typer.Option(
            "--converse", help="Call ConverseStream (default: InvokeModelWithResponseStream)."
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Requests in flight (closed loop; with --rate, the cap). Default 8."
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(help="Requests per second, or stages RATE:DURATION,... e.g. 5:30s,20:30s."),
    ] = None,
    arrivals: Annotated[
        Arrivals, typer.Option(help="Spacing of requests under --rate.")
    ] = Arrivals.uniform,
    seed: Annotated[int, typer.Option(help="Seed of Poisson arrivals.")] = 0,
    duration: Annotated[
        str | None,
        typer.Option(
            help="Stop sending after this long, e.g. 30s, 2m; requests in flight then finish."
        ),
    ] = None,
    cancel_at_deadline: Annotated[
        bool,
        typer.Option(
            "--cancel-at-deadline",
            help="When --duration is up, cancel the requests in flight instead of waiting.",
        ),
    ] = False,
    requests: Annotated[
        int | None, typer.Option(min=1, help=f"Stop after this many requests ({DEFAULT_REQUESTS}).")
    ] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="Prompts file (.txt lines, .jsonl, .json list).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Maximum tokens per answer.")] = 128,
    client: Annotated[
        ClientKind, typer.Option(help="raw: aiohttp + botocore SigV4; sdk: aiobotocore.")
    ] = ClientKind.raw,
    warmup: Annotated[
        int, typer.Option(min=0, help="Unrecorded requests first; one failing ends the command.")
    ] = 1,
    timeout: Annotated[str, typer.Option(help="Give up on a silent stream after this.")] = "300s",
    out: Annotated[
        Path | None,
        typer.Option(help="Write PREFIX.json and PREFIX.png (default: outcrop-bench-<time>)."),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the PNG.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Live progress (default: on a terminal)."),
    ] = None,
) -> None:
    """Load-test a Bedrock-compatible endpoint: TTFT, inter-token and end-to-end latency,
    throughput and errors."""
    started_at = datetime.now(UTC)
    try:
        stages = parse_rate(rate) if rate is not None else None
        run_for = parse_duration(duration) if duration is not None else None
        timeout_s = parse_duration(timeout)
    except ValueError as exc:
        fail(str(exc), 2)
    if stages is not None and run_for is None and requests is None:
        run_for = schedule_length(stages)
    if run_for is None and requests is None:
        requests = DEFAULT_REQUESTS
    if stages is None and concurrency is None:
        concurrency = 8
    plan = Plan(
        concurrency,
        stages,
        arrivals is Arrivals.poisson,
        seed,
        run_for,
        requests,
        cancel_at_deadline=cancel_at_deadline,
    )
    operation = Operation.converse if converse else Operation.invoke
    try:
        texts = load_prompts(prompts)
        payloads = [_payload(operation, model_id, text, max_tokens) for text in texts]
        target = _target(model_id, operation, endpoint_url, region, profile, timeout_s)
    except (PromptFileError, NoDefaultBody) as exc:
        fail(str(exc), 2)
    except CommandError as exc:
        fail(str(exc), exc.exit_code)
    err = Console(stderr=True, highlight=False)
    show = err.is_terminal if progress is None else progress
    info = RunInfo(
        endpoint_url=target.endpoint_url,
        model_id=model_id,
        operation=operation.api_name,
        client=client.value,
        plan={
            "concurrency": concurrency,
            "rate": rate,
            "arrivals": arrivals.value if stages is not None else None,
            "duration_s": run_for,
            "requests": requests,
            "warmup": warmup,
            "cancel_at_deadline": cancel_at_deadline,
        },
        max_tokens=max_tokens,
        prompts=len(payloads),
        started_at=started_at,
    )
    try:
        outcome = asyncio.run(_run(target, client, payloads, plan, warmup, err, show))
    except StreamFailed as exc:
        fail(f"{exc.error_type}: {exc.message}" if exc.message else exc.error_type, 1)
    if outcome is None:
        fail("interrupted before the run started", 130)
    summary = summarize(outcome.results, outcome.duration)
    doc = document(info, outcome, summary)
    render(Console(highlight=False), doc, summary)
    prefix = out if out is not None else Path(f"outcrop-bench-{started_at:%Y%m%d-%H%M%S}")
    json_path = prefix.with_name(prefix.name + ".json")
    written = [str(json_path)]
    try:
        write_json(json_path, doc)
        if not no_plot:
            from outcrop.cli.bench.plot import plot

            png_path = prefix.with_name(prefix.name + ".png")
            plot(doc, png_path)
            written.append(str(png_path))
    except OSError as exc:
        fail(f"cannot write results: {exc}", 1)
    err.print("results: " + ", ".join(written), markup=False, soft_wrap=True)
    if outcome.interrupted:
        fail(f"interrupted after {len(outcome.results)} requests; partial results above", 130)
    failed = [r for r in outcome.results if not r.ok]
    if outcome.results and len(failed) == len(outcome.results):
        errors = doc["summary"]["errors"]
        kinds = ", ".join(f"{name} × {count}" for name, count in errors.items())
        fail(f"all {len(failed)} requests failed ({kinds})", 1)


def _payload(operation: Operation, model_id: str, prompt: str, max_tokens: int) -> Payload:
    from outcrop.cli.bench.client import Payload

    if operation is Operation.converse:
        return Payload.of(converse_request(prompt, max_tokens))
    return Payload.of(default_body(model_id, prompt, max_tokens))


def _target(
    model_id: str,
    operation: Operation,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    timeout_s: float,
) -> Target:
    from outcrop.cli.bench.client import Target, bearer_from_environment

    sess = session(profile, region)
    signing_region = resolve_region(sess, region, endpoint_url)
    try:
        # botocore resolves the endpoint exactly as boto3 would (flag, env, profile, default).
        probe = sess.client(
            "bedrock-runtime", region_name=signing_region, endpoint_url=endpoint_url
        )
        resolved_url = str(probe.meta.endpoint_url)
    except BotoCoreError as exc:
        raise CommandError(str(exc)) from None
    bearer = bearer_from_environment()
    credentials = None
    if bearer is None:
        found = sess.get_credentials()
        if found is None:
            raise CommandError("Unable to locate credentials")
        credentials = found
    return Target(resolved_url, signing_region, model_id, operation, credentials, bearer, timeout_s)


async def _run(
    target: Target,
    kind: ClientKind,
    payloads: list[Payload],
    plan: Plan,
    warmup: int,
    err: Console,
    show_progress: bool,
) -> RunOutcome | None:
    from outcrop.cli.bench.client import make_transport

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    max_connections = plan.concurrency or 0
    try:
        async with make_transport(kind.value, target, max_connections) as transport:
            runner = Runner(
                transport, payloads, plan, on_deadline=lambda live: _deadline(err, plan, live)
            )
            if warmup:
                warm = asyncio.ensure_future(runner.warm_up(warmup))
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({warm, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not warm.done():
                    warm.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await warm
                    return None
                warm.result()
            if not show_progress:
                return await runner.run(stop)
            with _progress(err) as bar:
                task = bar.add_task("bench", total=_total(plan), status="starting")
                runner.on_tick = lambda live: _update(bar, task, plan, live)
                return await runner.run(stop)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def _deadline(console: Console, plan: Plan, live: LiveState) -> None:
    """Say that --duration is up, and what happens to the requests still in flight."""
    if not live.in_flight:
        return
    what = (
        f"cancelling the {live.in_flight} requests in flight"
        if plan.cancel_at_deadline
        else f"waiting for the {live.in_flight} requests in flight to finish "
        "(--cancel-at-deadline cancels them instead)"
    )
    console.print(
        f"bench: --duration {plan.duration:g}s is up: no more requests sent; {what}",
        markup=False,
        soft_wrap=True,
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]bench[/]"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        refresh_per_second=4,
    )


def _total(plan: Plan) -> float | None:
    if plan.requests is not None:
        return float(plan.requests)
    return plan.duration


def _update(bar: Progress, task: Any, plan: Plan, live: LiveState) -> None:
    elapsed = live.elapsed()
    done = live.completed + live.failed
    completed = float(done) if plan.requests is not None else min(elapsed, plan.duration or 0)
    status = (
        f"{done} done ({live.failed} failed), {live.in_flight} in flight · "
        f"{done / elapsed if elapsed else 0:.1f} req/s · "
        f"{live.output_tokens / elapsed if elapsed else 0:.0f} tokens/s"
    )
    bar.update(task, completed=completed, status=status)
