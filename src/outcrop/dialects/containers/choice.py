"""Choosing a container dialect: by name from the configuration, or from the request body.

Without configuration, a body with `messages` is an OpenAI chat-completions request; anything
else (`{"inputs": ...}`, or a body no dialect understands, which the chosen dialect then refuses
as that container would) goes to the `inputs` dialect: TGI unless configured as LMI.
"""

from __future__ import annotations

from typing import Literal

from outcrop.dialects.containers.base import ContainerDialect
from outcrop.dialects.containers.lmi import LmiDialect
from outcrop.dialects.containers.openai_chat import OpenAIChatDialect
from outcrop.dialects.containers.tgi import TgiDialect
from outcrop.wire.jsonbody import JsonInputError, load_json

DialectName = Literal["tgi", "lmi", "openai"]
DIALECT_NAMES: tuple[DialectName, ...] = ("tgi", "lmi", "openai")


def dialect_named(name: DialectName, model_name: str) -> ContainerDialect:
    if name == "tgi":
        return TgiDialect(model_name)
    if name == "lmi":
        return LmiDialect(model_name)
    return OpenAIChatDialect(model_name)


def dialect_name_for_body(body: bytes, inputs_dialect: DialectName = "tgi") -> DialectName:
    """The dialect an unconfigured endpoint uses for this body."""
    try:
        value = load_json(body)
    except JsonInputError:
        return inputs_dialect
    if isinstance(value, dict) and "messages" in value and "inputs" not in value:
        return "openai"
    return inputs_dialect
