"""Driving the whole app in process with fuzzed requests, and judging each answer.

`fuzz_app` builds the ASGI app the HTTP fuzzers call: the scripted engine (short answers), a
word/PII guardrail the seeds name, and guardrail state in a temporary folder. `exchange` sends one
request through `tests.asgi_driver` and classifies the outcome against the fuzz invariant: never
a 500 (as a status or as an `internalServerException`/`InternalStreamFailure` frame in a stream),
always `x-amzn-RequestId`, an `X-Amzn-ErrorType` on every error, nothing escaping the app (what
Granian turns into its plain-text 500), and an answer within `HANG_S` (a hang guard, not a
timing assertion: a correct answer takes milliseconds).
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from pathlib import Path

from botocore.eventstream import EventStreamBuffer

from outcrop.config import (
    EndpointSettings,
    SageMakerSettings,
    ScriptedSettings,
    ServerSettings,
    Settings,
    VariantSettings,
)
from outcrop.gateway.app import OutcropApp
from outcrop.guardrails.settings import GuardrailSettings
from tests.asgi_driver import Result, call
from tests.fuzz.corpus import LMI_ENDPOINT, guardrail_definition

HANG_S = 60.0
"""Far beyond any answer the scripted engine gives; only a hang reaches it."""

INTERNAL_FRAMES = frozenset({"internalServerException", "InternalStreamFailure"})


def fuzz_app(state_dir: Path) -> OutcropApp:
    """The app under fuzzing: scripted answers of a few tokens, one defined guardrail, an LMI
    endpoint (other endpoints pick their container dialect from the body)."""
    lmi = EndpointSettings(variants=[VariantSettings(engine="default", dialect="lmi")])
    auto = EndpointSettings(variants=[VariantSettings(engine="default")])
    settings = Settings(
        server=ServerSettings(access_log=False),
        engines={"default": ScriptedSettings(type="scripted", text="Basalt, granite, chalk.")},
        guardrails=GuardrailSettings(state_dir=state_dir, define=[guardrail_definition()]),
        sagemaker=SageMakerSettings(endpoints={LMI_ENDPOINT: lmi, "fuzz-endpoint": auto}),
    )
    return OutcropApp(settings)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one fuzzed request got, judged against the invariant."""

    verdict: str
    """`ok`, or what broke it: `500`, `stream-500`, `no-request-id`, `no-error-type`,
    `escaped`, `hang`."""
    status: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def where(exc: BaseException) -> str:
    """The innermost Outcrop source line of an exception's traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/outcrop/" in f.filename]
    if not frames:
        return "?"
    return f"{frames[-1].filename.rsplit('/outcrop/', 1)[1]}:{frames[-1].lineno}"


def judge(result: Result) -> Outcome:
    """The verdict on a complete answer."""
    headers = {k.lower(): v for k, v in result.headers.items()}
    # 503 (ServiceUnavailable) and 501 NotImplementedException (operations Outcrop does not
    # serve yet, e.g. GET /async-invoke) are deliberate, modelled answers; any other 5xx is not.
    not_served = result.status == 501 and (
        headers.get("x-amzn-errortype", "").startswith("NotImplementedException")
    )
    if result.status >= 500 and result.status != 503 and not not_served:
        return Outcome("500", result.status, result.body[:300].decode("utf-8", "replace"))
    if "x-amzn-requestid" not in headers:
        return Outcome("no-request-id", result.status)
    bare_413 = result.status == 413 and headers.get("content-type", "").startswith("text")
    if result.status >= 400 and "x-amzn-errortype" not in headers and not bare_413:
        return Outcome("no-error-type", result.status)
    if headers.get("content-type", "").startswith("application/vnd.amazon.eventstream"):
        buffer = EventStreamBuffer()
        buffer.add_data(result.body)
        for message in buffer:
            if message.headers.get(":exception-type") in INTERNAL_FRAMES:
                return Outcome(
                    "stream-500", result.status, bytes(message.payload)[:300].decode("utf-8")
                )
    return Outcome("ok", result.status)


async def exchange(
    app: OutcropApp,
    method: str,
    path: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> Outcome:
    """Send one request and judge the answer."""
    try:
        result = await asyncio.wait_for(
            call(app, method, path, body, headers or [("content-type", "application/json")]),
            HANG_S,
        )
    except TimeoutError:
        return Outcome("hang", 0)
    except Exception as exc:  # what would reach Granian and become its plain-text 500
        return Outcome("escaped", 0, f"{type(exc).__name__}: {str(exc)[:100]} at {where(exc)}")
    return judge(result)
