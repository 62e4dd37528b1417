"""A speech turn that can never fit the token quota ends the session with an exception event
the smithy SDK can decode: `throttlingException`, the output union's quota error (the union
has no `serviceQuotaExceededException` member; an SDK sees any non-member as unmodelled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.smithy_bidi import SmithyStream
from tests.conformance.speech_fixtures import CONFIG
from tests.support.server import ServerProcess, running_server
from tests.support.speech import NovaInput

# A turn reserves its input plus maxTokens (200 in NovaInput's opening): never within 8.
QUOTA = CONFIG + "\n[[quotas]]\ntokens_per_minute = 8\n"


@pytest.fixture(scope="module")
def quota_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("speech-quota") / "outcrop.toml"
    path.write_text(QUOTA)
    with running_server(["--config", str(path)], tls=tls_files) as server:
        yield server


async def test_a_turn_that_never_fits_the_quota_ends_with_a_modelled_throttling_exception(
    quota_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    from aws_sdk_bedrock_runtime.models import ThrottlingException

    nova = NovaInput()
    async with SmithyStream(quota_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(nova.opening(rate=16000))
        await stream.send_all(nova.text("USER", "What is the capital of France?", interactive=True))
        await stream.wait_end(30)
    assert isinstance(stream.error, ThrottlingException), stream.error
    assert stream.error.message.startswith("Your request exceeds the service quota")
