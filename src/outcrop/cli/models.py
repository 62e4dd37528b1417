"""`outcrop models`: the model IDs a server serves, their engines and readiness.

From a running server, the answer of its `GET /_outcrop/health`: the server named by
`--endpoint-url`, else (unless `--config` or `--engine` ask for the configuration view) the one
the environment names for SDKs, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` or `AWS_ENDPOINT_URL`.
Otherwise, what `outcrop serve` would serve with the same configuration (`--config` /
`OUTCROP_CONFIG`, `--engine`), engines not started. An optional glob narrows the model IDs
listed. Image and video generation models (catalog/modalities.py) are listed as unsupported.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from outcrop.catalog.foundation import foundation_models
from outcrop.catalog.modalities import unserved_output
from outcrop.catalog.resolver import ModelRoute, Resolver
from outcrop.cli.aws import ENDPOINT_VARIABLES, CommandError, fail
from outcrop.config import ConfigError, EngineKind, load_settings

HEALTH_PATH = "/_outcrop/health"


@dataclass(frozen=True, slots=True)
class ServedModel:
    model_id: str
    engine: str
    engine_type: str | None
    ready: bool | None
    """None when the server is not running (listed from configuration)."""
    unsupported: str | None = None
    """The output modality Outcrop cannot produce for this model (`IMAGE`, `VIDEO`)."""


def with_modality(served: ServedModel) -> ServedModel:
    """`served`, marked unsupported (and not ready) if it is an image or video model."""
    model = foundation_models().get(served.model_id)
    unsupported = unserved_output(model) if model is not None else None
    if unsupported is None:
        return served
    ready = None if served.ready is None else False
    return ServedModel(served.model_id, served.engine, served.engine_type, ready, unsupported)


def environment_endpoint() -> tuple[str, str] | None:
    """The endpoint URL SDKs would use from the environment, and the variable that set it."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value, name
    return None


def from_health(body: dict[str, Any]) -> list[ServedModel]:
    """The models a running server reports in its health document."""
    engines = body.get("engines") or {}
    served = []
    for model_id, info in sorted((body.get("models") or {}).items()):
        engine = str(info.get("engine", ""))
        state = engines.get(engine, {})
        served.append(
            ServedModel(model_id, engine, state.get("type"), bool(info.get("ready", False)))
        )
    return served


def from_config(config: Path | None, engine: EngineKind | None) -> list[ServedModel]:
    """The models `outcrop serve` would serve with this configuration."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise CommandError(str(exc), 2) from None
    if engine is not None:
        types = {"default": engine.value}
        routes = [ModelRoute("*", "default")]
    else:
        types = {name: s.type for name, s in settings.engines.items()}
        routes = [ModelRoute(r.match, r.engine) for r in settings.models] or [
            ModelRoute("*", "default")
        ]
    resolver = Resolver(
        routes=routes,
        aliases=dict(settings.aliases),
        extra_models=settings.catalog.extra_models(),
        strict=settings.catalog.strict,
    )
    return [
        ServedModel(model_id, name, types.get(name), None)
        for model_id, name in sorted(resolver.served_models().items())
    ]


def fetch_health(endpoint_url: str, timeout: float = 10.0, source: str = "") -> dict[str, Any]:
    """The server's health document; `source` (e.g. ` (from AWS_ENDPOINT_URL)`) ends errors."""
    try:
        return _fetch_health(endpoint_url, timeout)
    except CommandError as exc:
        raise CommandError(f"{exc}{source}", exc.exit_code) from None


def _fetch_health(endpoint_url: str, timeout: float) -> dict[str, Any]:
    url = endpoint_url.rstrip("/") + HEALTH_PATH
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:  # 503: still loading, the body says what
            raise CommandError(
                f"{endpoint_url} is not an Outcrop server (GET {HEALTH_PATH} answered {exc.code})"
            ) from None
        raw = exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach {endpoint_url}: {reason}") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise CommandError(
            f"{endpoint_url} answered {HEALTH_PATH} with something not JSON"
        ) from None
    if not isinstance(body, dict) or "models" not in body:
        raise CommandError(f"{endpoint_url} is not an Outcrop server") from None
    return body


def models(
    pattern: Annotated[
        str | None, typer.Argument(help="Only model IDs matching this glob, e.g. '*claude*'.")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="Ask this running Outcrop server (default: AWS_ENDPOINT_URL_BEDROCK_RUNTIME "
            "or AWS_ENDPOINT_URL, unless --config or --engine is given)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML configuration file (without --endpoint-url).", envvar="OUTCROP_CONFIG"
        ),
    ] = None,
    engine: Annotated[
        EngineKind | None, typer.Option(help="As `outcrop serve --engine` would.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the model IDs a server serves, with their engines and readiness."""
    source = ""
    if endpoint_url is None and config is None and engine is None:
        found = environment_endpoint()
        if found is not None:
            endpoint_url, variable = found
            source = f" (from {variable})"
    try:
        if endpoint_url is not None:
            health = fetch_health(endpoint_url, source=source)
            listed = from_health(health)
            status = str(health.get("status", ""))
        else:
            listed = from_config(config, engine)
            status = "not running"
    except CommandError as exc:
        fail(str(exc), exc.exit_code)
    listed = [with_modality(m) for m in listed]
    if pattern is not None:
        listed = [m for m in listed if fnmatch.fnmatchcase(m.model_id, pattern)]
    if as_json:
        document = {
            "status": status,
            "models": [
                {
                    "modelId": m.model_id,
                    "engine": m.engine,
                    "engineType": m.engine_type,
                    "ready": m.ready,
                    **({"unsupported": f"{m.unsupported} output"} if m.unsupported else {}),
                }
                for m in listed
            ],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    where = (
        f"{status} at {endpoint_url}"
        if endpoint_url is not None
        else "from configuration; no server asked (--endpoint-url or AWS_ENDPOINT_URL)"
    )
    table = Table(title=f"{len(listed)} model IDs ({where})", title_justify="left")
    table.add_column("MODEL ID")
    table.add_column("ENGINE")
    table.add_column("READY")
    for m in listed:
        engine_text = m.engine if m.engine_type is None else f"{m.engine} ({m.engine_type})"
        ready = "-" if m.ready is None else ("yes" if m.ready else "no")
        if m.unsupported is not None:
            ready = f"unsupported: {m.unsupported} output"
        table.add_row(m.model_id, engine_text, ready)
    Console(highlight=False, width=max(100, Console().width)).print(table)
