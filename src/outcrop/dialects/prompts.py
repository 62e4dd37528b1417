"""Reading the raw prompts of completion-style bodies (Llama, Mistral text, DeepSeek, Claude
legacy, Cohere legacy) into conversation turns.

Bedrock passes a `prompt` to the model verbatim: callers write the target model's own chat
markup into it (Llama 3 `<|start_header_id|>` headers, Llama 2 / Mistral `[INST]`, DeepSeek
`<｜User｜>`, Claude's `Human:`/`Assistant:`). That markup means nothing to the model Outcrop
actually serves, so:

* a prompt written in one of these chat formats is split into system / user / assistant turns
  and handed to the engine as messages, so the served model's own chat template renders them
  and it answers the last user turn sensibly; a trailing assistant header with no text is the
  generation prompt, a trailing assistant text is a prefill the answer continues;
* a prompt with no chat markup is plain text, which Bedrock's models simply continue; it goes to
  the engine as `GenerationRequest.raw_prompt` (no chat template), as on Bedrock.

`completion_request` makes that choice; the `split_*` functions are the individual formats.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from outcrop.types import ChatMessage, GenerationRequest, ReasoningConfig, Role, SamplingParams

Turns = list[ChatMessage]

_LLAMA3 = re.compile(
    r"<\|start_header_id\|>\s*(\w+)\s*<\|end_header_id\|>\n?\n?(.*?)(?=<\|eot_id\|>|<\|eom_id\|>|"
    r"<\|start_header_id\|>|\Z)(<\|eot_id\|>|<\|eom_id\|>)?",
    re.S,
)
_INST = re.compile(r"\[INST\](.*?)\[/INST\]", re.S)
_SYS = re.compile(r"<<SYS>>\s*(.*?)\s*<</SYS>>\s*", re.S)
_DEEPSEEK = re.compile(r"<｜(User|Assistant)｜>")
_HUMAN = re.compile(r"(?:^|\n)\s*(Human|Assistant)\s*:", re.S)
_SPECIAL = re.compile(
    r"<\|begin_of_text\|>|<\|end_of_text\|>|<s>|</s>|<｜begin▁of▁sentence｜>|<｜end▁of▁sentence｜>"
)


def _role(name: str) -> Role:
    name = name.lower()
    if name == "system":
        return "system"
    if name == "assistant":
        return "assistant"
    return "user"  # user, ipython / tool results


def _append(turns: Turns, role: Role, text: str) -> None:
    if turns and turns[-1].role == role and role != "system":
        turns[-1] = ChatMessage(role, turns[-1].text + "\n\n" + text)
    else:
        turns.append(ChatMessage(role, text))


def _finish(turns: Turns) -> Turns | None:
    """Drop an empty trailing assistant turn (the generation prompt); None if no user turn."""
    if turns and turns[-1].role == "assistant" and not turns[-1].text.strip():
        turns.pop()
    if not any(t.role == "user" for t in turns):
        return None
    return turns


def split_llama3(prompt: str) -> Turns | None:
    """Llama 3.x header format."""
    if "<|start_header_id|>" not in prompt:
        return None
    turns: Turns = []
    for match in _LLAMA3.finditer(prompt):
        role = _role(match.group(1))
        closed = match.group(3) is not None
        # An open assistant turn at the end is a prefill: keep its trailing text as written.
        text = match.group(2).lstrip() if role == "assistant" and not closed else match.group(2)
        text = text if role == "assistant" and not closed else text.strip()
        if text:
            _append(turns, role, text)
    return _finish(turns)


def split_inst(prompt: str) -> Turns | None:
    """Llama 2 / Mistral `[INST] ... [/INST]` format (with Llama 2's optional `<<SYS>>`)."""
    if "[INST]" not in prompt or "[/INST]" not in prompt:
        return None
    turns: Turns = []
    body = _SPECIAL.sub("", prompt)
    position = 0
    for match in _INST.finditer(body):
        between = body[position : match.start()].strip()
        if between and turns:
            _append(turns, "assistant", between)
        user = match.group(1)
        system = _SYS.search(user)
        if system is not None:
            if system.group(1).strip():
                turns.append(ChatMessage("system", system.group(1).strip()))
            user = user[: system.start()] + user[system.end() :]
        _append(turns, "user", user.strip())
        position = match.end()
    tail = body[position:]
    if tail.strip():
        _append(turns, "assistant", tail.lstrip())
    return _finish(turns)


def split_deepseek(prompt: str) -> Turns | None:
    """DeepSeek R1 / V3 `<｜User｜> ... <｜Assistant｜>` format (a trailing `<think>` opens the
    answer's reasoning and is dropped: the engine reports reasoning itself)."""
    if "<｜User｜>" not in prompt:
        return None
    text = _SPECIAL.sub("\n", prompt)
    parts = _DEEPSEEK.split(text)
    turns: Turns = []
    if parts[0].strip():
        turns.append(ChatMessage("system", parts[0].strip()))
    for role_name, content in zip(parts[1::2], parts[2::2], strict=True):
        content = content.strip()
        if role_name == "Assistant":
            content = re.sub(r"^<think>.*?(</think>|$)", "", content, flags=re.S).strip()
        if content:
            _append(turns, _role(role_name), content)
    return _finish(turns)


def split_human_assistant(prompt: str) -> Turns | None:
    """Claude's legacy `\\n\\nHuman: ... \\n\\nAssistant:` format."""
    marks = list(_HUMAN.finditer(prompt))
    if not marks or not any(m.group(1) == "Human" for m in marks):
        return None
    turns: Turns = []
    preamble = prompt[: marks[0].start()].strip()
    if preamble:
        turns.append(ChatMessage("system", preamble))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following is not None else len(prompt)
        content = prompt[mark.end() : end].strip()
        role: Role = "user" if mark.group(1) == "Human" else "assistant"
        if content:
            _append(turns, role, content)
    return _finish(turns)


SPLITTERS: tuple[Callable[[str], Turns | None], ...] = (
    split_llama3,
    split_deepseek,
    split_inst,
)


def split_chat_prompt(prompt: str) -> Turns | None:
    """Turns of a prompt in any known open-model chat format; None for plain text."""
    for split in SPLITTERS:
        turns = split(prompt)
        if turns is not None:
            return turns
    return None


def completion_request(
    prompt: str,
    sampling: SamplingParams,
    request_id: str,
    *,
    splitter: Callable[[str], Turns | None] = split_chat_prompt,
    reasoning: ReasoningConfig | None = None,
) -> GenerationRequest:
    """The request for a completion-style prompt: chat turns if it has chat markup, else raw."""
    turns = splitter(prompt)
    if turns is None:
        return GenerationRequest(
            (ChatMessage("user", prompt),),
            sampling,
            request_id,
            raw_prompt=prompt,
            reasoning=reasoning,
        )
    return GenerationRequest(tuple(turns), sampling, request_id, reasoning=reasoning)
