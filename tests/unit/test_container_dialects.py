"""Container dialects: what each emulated container reads and the exact bytes it writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outcrop.dialects.containers.base import (
    ContainerRejected,
    ContainerRequest,
    ContainerStream,
    token_id,
)
from outcrop.dialects.containers.choice import dialect_name_for_body
from outcrop.dialects.containers.lmi import LmiDialect
from outcrop.dialects.containers.openai_chat import OpenAIChatDialect
from outcrop.dialects.containers.tgi import TgiDialect
from outcrop.types import Finish, StopReason

END = Finish(StopReason.END_TURN, 3, 2)
LENGTH = Finish(StopReason.MAX_TOKENS, 3, 2)


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _tok(text: str) -> str:
    return f'{{"id":{token_id(text)},"text":"{text}","logprob":0.0,"special":false}}'


def _run(stream: ContainerStream, pieces: list[str], finish: Finish) -> list[bytes]:
    out = list(stream.start())
    for piece in pieces:
        out += stream.token(piece)
    return out + stream.finish(finish)


def test_tgi_parses_generate_parameters() -> None:
    request = TgiDialect().parse(
        "application/json",
        _body(
            {
                "inputs": "Hi",
                "parameters": {"max_new_tokens": 7, "temperature": 0.5, "stop": ["\n"], "seed": 3},
                "stream": True,
            }
        ),
        "r1",
    )
    assert request.stream and request.prompt == "Hi"
    assert request.generation.raw_prompt == "Hi"
    sampling = request.generation.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.stop_sequences, sampling.seed) == (
        7,
        0.5,
        ("\n",),
        3,
    )
    default = TgiDialect().parse(None, _body({"inputs": "Hi"}), "r2")
    assert default.generation.sampling.max_tokens == 100 and not default.stream


def test_tgi_non_streamed_answer_is_a_list() -> None:
    dialect = TgiDialect()
    request = dialect.parse(None, _body({"inputs": "Hi"}), "r")
    assert dialect.complete(request, [" a", " b"], END, 3).body == b'[{"generated_text":" a b"}]'
    detailed = dialect.parse(None, _body({"inputs": "Hi", "parameters": {"details": True}}), "r")
    body = json.loads(dialect.complete(detailed, [" a", " b"], END, 3).body)
    assert body[0]["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 3,
        "seed": None,
        "prefill": [],
        "tokens": [
            json.loads(_tok(" a")),
            json.loads(_tok(" b")),
            {"id": 2, "text": "</s>", "logprob": 0.0, "special": True},
        ],
    }
    full = dialect.parse(
        None, _body({"inputs": "Hi", "parameters": {"return_full_text": True}}), "r"
    )
    assert json.loads(dialect.complete(full, [" a"], LENGTH, 3).body) == [
        {"generated_text": "Hi a"}
    ]


def test_tgi_stream_events_exactly() -> None:
    dialect = TgiDialect()
    request = dialect.parse(None, _body({"inputs": "Hi", "stream": True}), "r")
    chunks = _run(dialect.stream(request, 3), [" a", " b"], LENGTH)
    first = f'{{"index":1,"token":{_tok(" a")},"generated_text":null,"details":null}}'
    second = f'{{"index":2,"token":{_tok(" b")},"generated_text":" a b","details":null}}'
    assert chunks == [f"data:{first}\n\n".encode(), f"data:{second}\n\n".encode()]
    detailed = dialect.parse(
        None, _body({"inputs": "Hi", "stream": True, "parameters": {"details": True}}), "r"
    )
    one = Finish(StopReason.END_TURN, 3, 1)
    last = json.loads(_run(dialect.stream(detailed, 3), [" a"], one)[-1][len(b"data:") :])
    assert last["token"]["special"] and last["generated_text"] == " a"
    assert last["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 2,
        "seed": None,
        "input_length": 3,
    }
    failure = dialect.stream(request, 3).failure("boom")
    assert failure == [
        b'data:{"error":"Request failed during generation: boom","error_type":"generation"}\n\n'
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/csv", b"a,b", 415, b"Expected request with `Content-Type: application/json`"),
        ("application/json", b"{oops", 400, b"Failed to parse the request body as JSON: "),
        (
            "application/json",
            b'{"prompt": "x"}',
            422,
            b"Failed to deserialize the JSON body into the target type: data did not match any "
            b"variant of untagged enum SagemakerRequest at line 1 column 15",
        ),
        (
            "application/json",
            b'{"inputs": "x", "parameters": {"temperature": 0}}',
            422,
            b'{"error":"Input validation error: `temperature` must be strictly positive",'
            b'"error_type":"validation"}',
        ),
    ],
)
def test_tgi_refusals(content_type: str, body: bytes, status: int, message: bytes) -> None:
    with pytest.raises(ContainerRejected) as info:
        TgiDialect().parse(content_type, body, "r")
    assert info.value.reply.status == status
    assert info.value.reply.body.startswith(message)


def test_tgi_hands_chat_bodies_to_its_messages_api() -> None:
    dialect = TgiDialect("tgi-model")
    request = dialect.parse(
        None, _body({"messages": [{"role": "user", "content": "x"}], "stream": True}), "r"
    )
    chunks = _run(dialect.stream(request, 1), ["y"], END)
    assert all(c.startswith(b"data:{") or c == b"data:[DONE]\n\n" for c in chunks)
    assert json.loads(chunks[0][5:])["system_fingerprint"]


def test_lmi_json_and_json_lines_exactly() -> None:
    dialect = LmiDialect()
    request = dialect.parse(None, _body({"inputs": "Hi", "parameters": {"max_new_tokens": 2}}), "r")
    assert request.generation.sampling.max_tokens == 2
    assert dialect.complete(request, [" a", " b"], LENGTH, 3).body == b'{"generated_text": " a b"}'
    streamed = dialect.parse(
        None, _body({"inputs": "Hi", "stream": True, "parameters": {"details": True}}), "r"
    )
    chunks = _run(dialect.stream(streamed, 3), [" a", " b"], LENGTH)
    assert chunks == [
        f'{{"token": {{"id": {token_id(" a")}, "text": " a", "log_prob": 0.0}}}}\n'.encode(),
        (
            f'{{"token": {{"id": {token_id(" b")}, "text": " b", "log_prob": 0.0}}, '
            '"generated_text": " a b", "details": {"finish_reason": "length", '
            '"generated_tokens": 2, "inputs": "Hi"}}\n'
        ).encode(),
    ]
    failed = dialect.stream(streamed, 3)
    failed.token(" a")
    (line,) = failed.failure("boom")
    assert json.loads(line)["details"] == {"finish_reason": "error"}
    assert json.loads(line)["generated_text"] == " a"


def test_lmi_refusals_are_djl_errors() -> None:
    with pytest.raises(ContainerRejected) as info:
        LmiDialect().parse(None, b'{"prompt": "x"}', "r")
    assert info.value.reply.status == 400
    assert info.value.reply.body == (
        b'{\n  "code": 400,\n  "type": "BadRequestException",\n'
        b'  "message": "Parameter inputs is required."\n}'
    )


def test_openai_completion_and_chunks() -> None:
    dialect = OpenAIChatDialect("served")
    request = dialect.parse(
        "application/json",
        _body(
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                ],
                "max_tokens": 5,
                "stop": "x",
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ),
        "r",
    )
    assert [m.role for m in request.generation.messages] == ["system", "user"]
    assert request.generation.messages[1].text == "hi"
    assert request.generation.sampling.stop_sequences == ("x",)
    answer = json.loads(dialect.complete(request, ["a", "b"], END, 4).body)
    assert answer["model"] == "served" and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "ab"}
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 6, "completion_tokens": 2}
    chunks = _run(dialect.stream(request, 4), ["a"], LENGTH)
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in chunks)
    parsed = [json.loads(c[6:]) for c in chunks[:-1]]
    assert chunks[-1] == b"data: [DONE]\n\n"
    assert [p["choices"][0]["delta"] for p in parsed[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
        {},
    ]
    assert parsed[2]["choices"][0]["finish_reason"] == "length"
    assert parsed[3]["choices"] == [] and parsed[3]["usage"]["completion_tokens"] == 2
    assert len({p["id"] for p in parsed}) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"messages": []}',
        b'{"messages": [{"role": "wizard", "content": "x"}]}',
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": 3}',
    ],
)
def test_openai_refusals(body: bytes) -> None:
    with pytest.raises(ContainerRejected) as info:
        OpenAIChatDialect().parse(None, body, "r")
    assert info.value.reply.status == 400
    assert json.loads(info.value.reply.body)["error"]["type"] == "BadRequestError"


def test_dialect_from_body() -> None:
    assert dialect_name_for_body(b'{"inputs": "x"}') == "tgi"
    assert dialect_name_for_body(b'{"inputs": "x"}', "lmi") == "lmi"
    assert dialect_name_for_body(b'{"messages": []}') == "openai"
    assert dialect_name_for_body(b"not json") == "tgi"


def test_requests_are_frozen_values() -> None:
    request = TgiDialect().parse(None, _body({"inputs": "x"}), "r")
    assert isinstance(request, ContainerRequest)
    with pytest.raises(AttributeError):
        request.stream = True  # type: ignore[misc]
