"""Unit tests for `outcrop.engines.chat_template`: prompt text from neutral chat messages."""

from __future__ import annotations

import pytest

from outcrop.engines.base import EngineError
from outcrop.engines.chat_template import (
    ChatTemplateError,
    JinjaChatTemplate,
    gemma_prompt,
    plain_prompt,
    render_prompt,
    template_for_model,
)
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams

# Gemma 3's official chat template (google/gemma-3-*-it tokenizer_config.json), with the
# branches for list content (images) left out: these requests carry plain strings.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def system(text: str) -> ChatMessage:
    return ChatMessage("system", text)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


def test_gemma_single_user_turn_opens_model_turn() -> None:
    assert gemma_prompt([user("Hello")]) == (
        "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_system_text_is_prepended_to_first_user_turn() -> None:
    prompt = gemma_prompt([system("Be brief."), user("Hi"), assistant("Hey"), user("Bye")])
    assert prompt == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHey<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_several_system_messages_are_joined() -> None:
    prompt = gemma_prompt([system("One."), system("Two."), user("Hi")])
    assert prompt.startswith("<start_of_turn>user\nOne.\n\nTwo.\n\nHi<end_of_turn>\n")


def test_gemma_trailing_assistant_is_an_open_prefill_kept_verbatim() -> None:
    prompt = gemma_prompt([user("Count"), assistant("1, 2, ")])
    assert prompt == "<start_of_turn>user\nCount<end_of_turn>\n<start_of_turn>model\n1, 2, "
    assert not prompt.endswith("<end_of_turn>\n")


def test_gemma_system_without_user_turn_becomes_a_user_turn() -> None:
    assert gemma_prompt([system("Rules."), assistant("Sure")]) == (
        "<start_of_turn>user\nRules.<end_of_turn>\n<start_of_turn>model\nSure"
    )


def test_gemma_consecutive_same_role_messages_are_merged() -> None:
    assert gemma_prompt([user("a"), user("b")]) == (
        "<start_of_turn>user\na\n\nb<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_empty_conversation_is_just_the_model_turn() -> None:
    assert gemma_prompt([]) == "<start_of_turn>model\n"


@pytest.mark.parametrize(
    "messages",
    [
        [user("Hello")],
        [system("You are terse."), user("  Hi there  "), assistant("Hello."), user("Why?")],
        [user("Question"), assistant("Answer"), user("Follow-up")],
    ],
)
def test_gemma_format_matches_gemma3_official_template(messages: list[ChatMessage]) -> None:
    rendered = JinjaChatTemplate(GEMMA3_TEMPLATE, bos_token="<bos>", eos_token="<eos>")(messages)
    assert rendered == "<bos>" + gemma_prompt(messages)


def test_jinja_prefill_is_appended_after_generation_prompt() -> None:
    template = JinjaChatTemplate(CHATML_TEMPLATE, bos_token="<s>", eos_token="</s>")
    assert template([user("Hi"), assistant("Well,")]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nWell,"
    )


def test_jinja_system_role_is_passed_to_the_template() -> None:
    template = JinjaChatTemplate(CHATML_TEMPLATE, bos_token="<s>", eos_token="</s>")
    assert template([system("S"), user("U")]) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )


def test_jinja_template_raise_exception_becomes_chat_template_error() -> None:
    template = JinjaChatTemplate(GEMMA3_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        template([user("a"), user("b"), assistant("c"), user("d")])


def test_jinja_template_that_does_not_compile_is_a_chat_template_error() -> None:
    with pytest.raises(ChatTemplateError) as info:
        JinjaChatTemplate("{% for %}", bos_token="", eos_token="")
    assert isinstance(info.value, EngineError)


def test_plain_prompt_for_unknown_models() -> None:
    assert plain_prompt([system("S"), user("Hi"), assistant("Yo"), user("Q")]) == (
        "S\n\nUser: Hi\n\nAssistant: Yo\n\nUser: Q\n\nAssistant:"
    )
    assert plain_prompt([user("Hi"), assistant("Sure,")]) == "User: Hi\n\nAssistant: Sure,"


def test_template_for_model_prefers_the_gguf_template() -> None:
    metadata = {"general.architecture": "gemma3", "tokenizer.chat_template": CHATML_TEMPLATE}
    chosen = template_for_model(metadata, bos_token="<bos>", eos_token="<eos>")
    assert chosen([user("x")]).startswith("<|im_start|>user\nx")


def test_template_for_model_gemma_without_template_uses_gemma_turns() -> None:
    chosen = template_for_model({"general.architecture": "gemma3"}, bos_token="", eos_token="")
    assert chosen is gemma_prompt


def test_template_for_model_falls_back_to_plain() -> None:
    chosen = template_for_model({"general.architecture": "llama"}, bos_token="", eos_token="")
    assert chosen is plain_prompt


def test_render_prompt_raw_prompt_bypasses_the_template() -> None:
    sampling = SamplingParams(max_tokens=5)
    raw = GenerationRequest(messages=(user("ignored"),), sampling=sampling, raw_prompt="RAW")
    templated = GenerationRequest(messages=(user("Hi"),), sampling=sampling)
    assert render_prompt(raw, gemma_prompt) == "RAW"
    assert render_prompt(templated, gemma_prompt) == gemma_prompt([user("Hi")])
