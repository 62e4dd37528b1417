"""Prompt text for a local model, built from a request's neutral chat messages.

This module owns the choice and rendering of a model's prompt format, as pure functions:

- a GGUF that carries `tokenizer.chat_template` gets that Jinja template rendered (a sandboxed
  environment set up as Hugging Face Transformers sets up chat templates: trimmed blocks,
  loop controls, a pass-through `{% generation %}` tag, `tojson` without ASCII escaping,
  `raise_exception` and `strftime_now`);
- a Gemma model without one (the embedded default is a base model) gets Gemma's turn format;
- any other model gets a plain `User:` / `Assistant:` transcript.

Shared conventions, whatever the format:

- A trailing assistant message is a *prefill*: the model's turn is opened and the prefill text
  follows verbatim, with no end-of-turn marker, so generation continues it.
- `GenerationRequest.raw_prompt` bypasses templating entirely (`render_prompt`).
- The rendered text may or may not begin with the BOS token's text; the engine makes sure the
  tokenized prompt starts with exactly one BOS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outcrop.engines.base import EngineRequestError
from outcrop.types import ChatMessage, GenerationRequest, Role

ChatTemplate = Callable[[Sequence[ChatMessage]], str]
"""Renders a conversation (system, user and assistant turns) into prompt text."""

GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
GGUF_ARCHITECTURE_KEY = "general.architecture"


class ChatTemplateError(EngineRequestError):
    """The model's chat template rejected the conversation (for example, roles that do not
    alternate) or could not be rendered. The request is at fault, not the engine."""


@dataclass(frozen=True, slots=True)
class _Turn:
    role: Role
    text: str


def render_prompt(request: GenerationRequest, template: ChatTemplate) -> str:
    """The prompt text for `request`: its `raw_prompt` if set, else `template(messages)`."""
    if request.raw_prompt is not None:
        return request.raw_prompt
    return template(request.messages)


def template_for_model(
    metadata: Mapping[str, str], *, bos_token: str, eos_token: str
) -> ChatTemplate:
    """Pick the prompt format for a GGUF model from its metadata.

    `bos_token` and `eos_token` are the texts of the model's BOS and EOS tokens; Jinja
    templates refer to them.
    """
    source = metadata.get(GGUF_TEMPLATE_KEY)
    if source:
        return JinjaChatTemplate(source, bos_token=bos_token, eos_token=eos_token)
    if metadata.get(GGUF_ARCHITECTURE_KEY, "").startswith("gemma"):
        return gemma_prompt
    return plain_prompt


def gemma_prompt(messages: Sequence[ChatMessage]) -> str:
    """Gemma's turn format.

    Gemma has no system role: system text (all system messages, joined by a blank line) is
    prepended to the first user turn, or becomes a user turn of its own when the conversation
    does not start with one. Assistant turns are `model` turns. Consecutive messages of one role
    are merged with a blank line between them. Turn texts are trimmed, as Gemma's official
    template does; a trailing assistant message (prefill) is kept verbatim and left open.
    """
    turns, prefill = _split_prefill(_merge_turns(messages))
    system = "\n\n".join(m.text.strip() for m in messages if m.role == "system")
    if system:
        if turns and turns[0].role == "user":
            turns[0] = _Turn("user", f"{system}\n\n{turns[0].text}")
        else:
            turns.insert(0, _Turn("user", system))
    parts = [
        f"<start_of_turn>{'model' if turn.role == 'assistant' else 'user'}\n{turn.text}"
        "<end_of_turn>\n"
        for turn in turns
    ]
    parts.append("<start_of_turn>model\n")
    if prefill is not None:
        parts.append(prefill)
    return "".join(parts)


def plain_prompt(messages: Sequence[ChatMessage]) -> str:
    """A plain transcript for models with neither a chat template nor a known format.

    System text comes first, then `User: ...` and `Assistant: ...` paragraphs, ending with an
    open `Assistant:` (followed by the prefill, if any).
    """
    turns, prefill = _split_prefill(_merge_turns(messages))
    system = "\n\n".join(m.text.strip() for m in messages if m.role == "system")
    parts = [system] if system else []
    parts += [f"{'Assistant' if t.role == 'assistant' else 'User'}: {t.text}" for t in turns]
    parts.append("Assistant:" + (f" {prefill}" if prefill is not None else ""))
    return "\n\n".join(parts)


class _GenerationTag(jinja2.ext.Extension):
    """Hugging Face's `{% generation %}...{% endgeneration %}` chat-template tag, passed through."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it an instance variable

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> NoReturn:
    raise ValueError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class JinjaChatTemplate:
    """A GGUF/Hugging Face Jinja chat template, rendered with a generation prompt.

    A trailing assistant message (prefill) is not given to the template (templates would close
    it with an end-of-turn marker); the rest is rendered with `add_generation_prompt=True` and
    the prefill text is appended, so the model's turn stays open.
    """

    def __init__(self, source: str, *, bos_token: str, eos_token: str) -> None:
        environment = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_GenerationTag, jinja2.ext.loopcontrols],
        )
        environment.filters["tojson"] = _tojson
        self._bos_token, self._eos_token = bos_token, eos_token
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"the model's chat template does not compile: {exc}") from exc

    def __call__(self, messages: Sequence[ChatMessage]) -> str:
        prefill: str | None = None
        if messages and messages[-1].role == "assistant":
            prefill = messages[-1].text
            messages = messages[:-1]
        rendered: list[Any] = [{"role": m.role, "content": m.text} for m in messages]
        try:
            prompt = self._template.render(
                messages=rendered,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
                add_generation_prompt=True,
                raise_exception=_raise_exception,
                strftime_now=_strftime_now,
            )
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            # ValueError is what the template's raise_exception(...) raises.
            message = f"the model's chat template rejected the request: {exc}"
            raise ChatTemplateError(message) from exc
        return prompt if prefill is None else prompt + prefill


def _merge_turns(messages: Sequence[ChatMessage]) -> list[_Turn]:
    """Non-system messages as turns, consecutive same-role messages merged.

    Texts are trimmed except the last one's when it is an assistant message (a prefill).
    """
    turns: list[_Turn] = []
    conversation = [m for m in messages if m.role != "system"]
    for index, message in enumerate(conversation):
        is_prefill = index == len(conversation) - 1 and message.role == "assistant"
        text = message.text if is_prefill else message.text.strip()
        if turns and turns[-1].role == message.role:
            turns[-1] = _Turn(message.role, f"{turns[-1].text}\n\n{text}")
        else:
            turns.append(_Turn(message.role, text))
    return turns


def _split_prefill(turns: list[_Turn]) -> tuple[list[_Turn], str | None]:
    if turns and turns[-1].role == "assistant":
        return turns[:-1], turns[-1].text
    return turns, None
