"""`outcrop` commands: `serve`, `invoke`, `models` and `bench`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from outcrop.cli.bench.command import bench as bench_command
from outcrop.cli.cassettes import cassettes as cassettes_app
from outcrop.cli.invoke import invoke as invoke_command
from outcrop.cli.models import models as models_command
from outcrop.cli.startup import StartupFailed, StartupTracebacks, announce, essential_engines
from outcrop.config import (
    ConfigError,
    EngineKind,
    InvocationLogSettings,
    LlamaCppSettings,
    OpenAISettings,
    ScriptedSettings,
    ServerSettings,
    Settings,
)
from outcrop.config.recording import RecordModeFlag, with_flags

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _root() -> None:
    """Outcrop: Amazon Bedrock Runtime on local models, over the exact AWS wire protocol."""


def build_settings(
    config: Path | None,
    engine: EngineKind | None,
    model: Path | None,
    host: str | None,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_port: int | None,
    delay_ms: float | None,
    quiet: bool = False,
    invocation_log: str | None = None,
    log_bodies: bool | None = None,
    upstream: str | None = None,
    threads: int | None = None,
    recording: Mapping[str, Any] | None = None,
) -> Settings:
    """The config file's settings with command-line flags laid over them.

    Raises `ConfigError` for a bad file and `ValueError` (one line) for bad flags.
    """
    from outcrop.app import load_settings

    settings = load_settings(config)
    logging_ = settings.invocation_log.model_dump()
    if invocation_log is not None:
        logging_["destination"] = invocation_log
    if log_bodies is not None:
        logging_["include_bodies"] = log_bodies
    server = settings.server.model_dump()
    for key, value in (
        ("host", host),
        ("port", port),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("tls_port", tls_port),
    ):
        if value is not None:
            server[key] = value
    if quiet:
        server["access_log"] = False
    engines = dict(settings.engines)
    if engine is EngineKind.scripted:
        engines = {"default": ScriptedSettings(type="scripted", delay_ms=delay_ms or 0.0)}
    elif engine is EngineKind.openai:
        if upstream is None:
            raise ValueError("--engine openai needs --upstream URL")
        engines = {"default": OpenAISettings(type="openai", upstream=upstream)}
    elif engine is EngineKind.llamacpp or model is not None:
        engines = {"default": LlamaCppSettings(type="llamacpp", model=model)}
    if threads is not None:  # every llama.cpp engine's n_threads
        engines = {
            name: s.model_copy(update={"n_threads": threads})
            if isinstance(s, LlamaCppSettings)
            else s
            for name, s in engines.items()
        }
    models = settings.models if engine is None and model is None else []
    try:
        server_settings = ServerSettings.model_validate(server)
        recording_settings = with_flags(settings.recording, **(recording or {}))
    except ValidationError as exc:
        raise ValueError(flag_problem(exc)) from None
    # Every section the flags do not touch is kept as loaded: copying a few by name silently
    # dropped each new section (`[state]`, `[console]`) until someone noticed.
    # (validated again as a whole, so cross-section checks see the flags' changes)
    return Settings(
        **{
            **dict(settings),
            "server": server_settings,
            "engines": engines,
            "models": models,
            "invocation_log": InvocationLogSettings.model_validate(logging_),
            "recording": recording_settings,
        }
    )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What OUTCROP_LOG_LEVEL may say (any case)."""


def flag_problem(exc: ValidationError) -> str:
    """pydantic's complaint about a flag's value as one line: `--tls-port: Input should ...`."""
    problems = []
    for error in exc.errors():
        names = [str(part).replace("_", "-") for part in error["loc"]]
        where = f"--{names[-1]}: " if names else ""
        problems.append(where + error["msg"].removeprefix("Value error, "))
    return "; ".join(problems)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(help="TOML configuration file.", envvar="OUTCROP_CONFIG"),
    ] = None,
    engine: Annotated[
        EngineKind | None, typer.Option(help="Serve every model from this engine.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="GGUF file, or an embedded model's name (smollm2-135m, gemma3-270m), "
            "for the llama.cpp engine."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads of llama.cpp engines (default 1: fastest on a shared machine).",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible server's base URL (--engine openai), e.g. …/v1."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port for HTTP/1.1 and h2c.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    tls_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port of the TLS listener (default: port + 1)."),
    ] = None,
    delay_ms: Annotated[
        float | None, typer.Option(help="Scripted engine: delay between tokens (ms).")
    ] = None,
    invocation_log: Annotated[
        str | None,
        typer.Option(help="Write Bedrock-style invocation logs to this file ('-': stdout)."),
    ] = None,
    log_bodies: Annotated[
        bool | None,
        typer.Option("--log-bodies/--no-log-bodies", help="Include bodies in invocation logs."),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No access log line per request ([server] access_log = false)."
        ),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(help="Proxy every call upstream (AWS by default) and record cassettes here."),
    ] = None,
    record_upstream: Annotated[
        str | None,
        typer.Option(help="Record from this base URL instead of AWS (e.g. another Outcrop)."),
    ] = None,
    replay: Annotated[
        Path | None, typer.Option(help="Serve calls from the cassettes here, no upstream.")
    ] = None,
    replay_speed: Annotated[
        float | None,
        typer.Option(min=0, help="Replay timing: 1 as recorded, 10 ten times faster, 0 no delays."),
    ] = None,
    record_mode: Annotated[
        RecordModeFlag | None,
        typer.Option(help="none | once | new_episodes | all (VCR's modes; docs/cassettes.md)."),
    ] = None,
) -> None:
    """Serve Bedrock Runtime on 127.0.0.1:4590 (HTTP/1.1 and h2c)."""
    level = os.environ.get("OUTCROP_LOG_LEVEL", "WARNING").upper()
    if level not in LOG_LEVELS:
        typer.echo(
            f"outcrop: OUTCROP_LOG_LEVEL={level}: use one of {', '.join(LOG_LEVELS)}", err=True
        )
        raise typer.Exit(2)
    logging.basicConfig(level=level)
    starting = StartupTracebacks()
    if level != "DEBUG":
        for handler in logging.getLogger().handlers:
            handler.addFilter(starting)
    try:
        settings = build_settings(
            config,
            engine,
            model,
            host,
            port,
            tls_cert,
            tls_key,
            tls_port,
            delay_ms,
            quiet=quiet,
            invocation_log=invocation_log,
            log_bodies=log_bodies,
            upstream=upstream,
            threads=threads,
            recording={
                "record": record,
                "upstream": record_upstream,
                "replay": replay,
                "replay_speed": replay_speed,
                "mode": record_mode.value if record_mode is not None else None,
            },
        )
    except (ConfigError, ValueError) as exc:
        typer.echo(f"outcrop: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_serve(settings, starting))
    except KeyboardInterrupt:
        pass
    except (OSError, ConfigError, StartupFailed) as exc:
        typer.echo(f"outcrop: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("Outcrop stopped.", err=True)


def _stopping(sig: signal.Signals, in_flight: int, forced: bool) -> None:
    """The line `outcrop serve` prints on Ctrl-C or SIGTERM."""
    if forced:
        line = f"Outcrop got {sig.name} again: cancelling {in_flight} requests in flight."
    elif in_flight:
        line = (
            f"Outcrop is stopping ({sig.name}): letting {in_flight} requests in flight finish "
            "(Ctrl-C again cancels them)."
        )
    else:
        line = f"Outcrop is stopping ({sig.name})."
    typer.echo(line, err=True)


async def _serve(settings: Settings, starting: StartupTracebacks) -> None:
    from outcrop.app import build_app
    from outcrop.server import TLSListener, serve

    app_ = build_app(settings)
    served, transport = app_.served()
    app_.start_engines()
    s = settings.server
    tls = None
    if s.tls_cert is not None and s.tls_key is not None:
        tls = TLSListener(
            port=s.tls_port if s.tls_port is not None else s.port + 1,
            cert=s.tls_cert,
            key=s.tls_key,
        )

    loop = asyncio.get_running_loop()
    announcing: list[object] = []
    stop = asyncio.Event()
    failure: list[str] = []

    async def start_up(urls: list[str]) -> None:
        problem = await announce(app_.engines, urls, essential=essential_engines(settings))
        starting.starting = False
        if problem is not None:
            failure.append(problem)
            stop.set()

    def ready(urls: list[str]) -> None:
        # Progress while models load, then the URL line (safe to call from any thread).
        announcing.append(asyncio.run_coroutine_threadsafe(start_up(urls), loop))

    async def on_stop() -> None:
        await stop.wait()
        app_.stopping()

    stopping = asyncio.create_task(on_stop())
    try:
        await serve(
            served,
            host=s.host,
            port=s.port,
            tls=tls,
            on_ready=ready,
            stop=stop,
            on_signal=_stopping,
            limits=transport,
        )
    finally:
        stopping.cancel()
        await app_.close()
    if failure:
        raise StartupFailed(failure[0])


app.command()(invoke_command)
app.command()(models_command)
app.command()(bench_command)
app.add_typer(cassettes_app, name="cassettes")


def main(argv: list[str] | None = None) -> None:
    """Run a command; a usage error is one line (`outcrop: message (see ... --help)`), exit 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="outcrop", standalone_mode=False)
    except typer.TyperException as exc:  # Typer's click exceptions (usage errors among them)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `outcrop`: the help, as asked
            typer.echo(exc.format_message())
            sys.exit(0)
        message = exc.format_message().replace("Value error, ", "")
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"outcrop: {' '.join(message.split())}{where}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("outcrop: aborted", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
