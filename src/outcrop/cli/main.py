"""`outcrop` commands: `serve`, `invoke`, `models` and `bench`."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from outcrop.cli.bench.command import bench as bench_command
from outcrop.cli.invoke import invoke as invoke_command
from outcrop.cli.models import models as models_command
from outcrop.config import (
    ConfigError,
    EngineKind,
    InvocationLogSettings,
    LlamaCppSettings,
    OpenAISettings,
    ScriptedSettings,
    ServerSettings,
    Settings,
    load_settings,
)

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
    invocation_log: str | None = None,
    log_bodies: bool | None = None,
    upstream: str | None = None,
    threads: int | None = None,
) -> Settings:
    """The config file's settings with command-line flags laid over them."""
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
    return Settings(
        server=ServerSettings.model_validate(server),
        engines=engines,
        models=models,
        aliases=settings.aliases,
        invocation_log=InvocationLogSettings.model_validate(logging_),
        sagemaker=settings.sagemaker,
        embeddings=settings.embeddings,
        speech=settings.speech,
        **{name: getattr(settings, name) for name in SECURITY_SECTIONS},
        guardrails=settings.guardrails,
    )


SECURITY_SECTIONS = ("auth", "principals", "policies", "quotas", "faults", "limits", "admin")
"""Settings sections the command-line flags never change."""


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
    port: Annotated[int | None, typer.Option(help="Port for HTTP/1.1 and h2c.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    tls_port: Annotated[
        int | None, typer.Option(help="Port of the TLS listener (default: port + 1).")
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
) -> None:
    """Serve Bedrock Runtime on 127.0.0.1:4590 (HTTP/1.1 and h2c)."""
    logging.basicConfig(level=os.environ.get("OUTCROP_LOG_LEVEL", "WARNING"))
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
            invocation_log=invocation_log,
            log_bodies=log_bodies,
            upstream=upstream,
            threads=threads,
        )
    except (ConfigError, ValueError) as exc:
        typer.echo(f"outcrop: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    except (OSError, ConfigError) as exc:
        typer.echo(f"outcrop: {exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(settings: Settings) -> None:
    from outcrop.cli.startup import announce
    from outcrop.gateway.app import OutcropApp
    from outcrop.server import TLSListener, serve

    app_ = OutcropApp(settings)
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

    def ready(urls: list[str]) -> None:
        # Progress while models load, then the URL line (safe to call from any thread).
        announcing.append(asyncio.run_coroutine_threadsafe(announce(app_.engines, urls), loop))

    try:
        await serve(app_, host=s.host, port=s.port, tls=tls, on_ready=ready)
    finally:
        await app_.close()


app.command()(invoke_command)
app.command()(models_command)
app.command()(bench_command)


def main() -> None:
    app(prog_name="outcrop")


if __name__ == "__main__":
    main()
