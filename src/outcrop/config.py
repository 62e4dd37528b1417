"""Server configuration: the TOML file (`--config` / `OUTCROP_CONFIG`) and command-line overrides.

Validated with pydantic; a file that does not parse or validate stops the server at start with
a message naming the offending key.

    [server]
    host = "127.0.0.1"
    port = 4590
    tls_port = 4591             # with tls_cert and tls_key: an extra TLS listener (ALPN h2)
    tls_cert = "cert.pem"
    tls_key = "key.pem"

    [engines.default]           # the engine named "default" serves every model by default
    type = "llamacpp"           # llamacpp | scripted
    model = "/path/model.gguf"  # omitted: the embedded Gemma 3 270M
    n_ctx = 4096

    [engines.fast]
    type = "scripted"
    text = "Hello!"             # omitted: echo the last user message
    delay_ms = 20

    [[models]]                  # first match wins; glob over base model IDs
    match = "anthropic.claude-3-haiku*"
    engine = "fast"

    [aliases]                   # identifiers whose model can't be read off them
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123" = \
        "anthropic.claude-3-haiku-20240307-v1:0"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4590


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    tls_port: int | None = Field(None, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class LlamaCppSettings(_Strict):
    type: Literal["llamacpp"]
    model: Path | None = None
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)


class ScriptedToolCallSettings(_Strict):
    name: str
    arguments: str = "{}"  # JSON text of the call's input object


class ScriptedSettings(_Strict):
    type: Literal["scripted"]
    text: str | None = None
    token_count: int | None = Field(None, ge=1)
    delay_ms: float = Field(0.0, ge=0)
    first_token_delay_ms: float = Field(0.0, ge=0)
    reasoning: str | None = None  # reasoning text when a request asks for reasoning
    tool_calls: list[ScriptedToolCallSettings] | None = None  # calls made when tools are offered
    fail_after_tokens: int | None = Field(None, ge=0)


EngineSettings = Annotated[LlamaCppSettings | ScriptedSettings, Field(discriminator="type")]


class ModelRouteSettings(_Strict):
    match: str
    engine: str


def _default_engines() -> dict[str, EngineSettings]:
    return {"default": LlamaCppSettings(type="llamacpp")}


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    engines: dict[str, EngineSettings] = Field(default_factory=_default_engines)
    models: list[ModelRouteSettings] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _engines_exist(self) -> Settings:
        for route in self.models:
            if route.engine not in self.engines:
                raise ValueError(
                    f"models: route {route.match!r} names unknown engine {route.engine!r}"
                )
        if not self.models and "default" not in self.engines:
            raise ValueError(
                'engines: without [[models]] routes an engine named "default" is required'
            )
        return self


class ConfigError(Exception):
    """The configuration file is unreadable or invalid; the message says where."""


def load_settings(path: Path | None) -> Settings:
    """Settings from a TOML file, or the defaults when `path` is None."""
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
