"""The SageMaker conformance setup shared by the boto3 and JS test modules.

One test container process (`tests/support/sagemaker_container.py`) and one `outcrop serve`
whose configuration declares an endpoint per situation under test: engine-backed endpoints in
each container dialect, endpoints forwarding to each behaviour of the test container, weighted
variants, a multi-container endpoint, inference components, session endpoints and capacity
limits. Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sagemaker_container import RunningContainer, running_container
from tests.support.server import ServerProcess, running_server

STREAM_TIMEOUT_S = 1.5


def config_text(container: RunningContainer, s3_root: Path) -> str:
    def url(prefix: str = "") -> str:
        return json.dumps(container.url(prefix))

    return f"""
[engines.default]
type = "scripted"

[engines.broken]
type = "scripted"
fail_after_tokens = 2

[sagemaker]
async_local_root = {json.dumps(str(s3_root))}

[[sagemaker.endpoints.tgi.variants]]
engine = "default"
dialect = "tgi"
max_concurrent_invocations_per_instance = 8

[[sagemaker.endpoints.lmi.variants]]
engine = "default"
dialect = "lmi"
max_concurrent_invocations_per_instance = 8

[sagemaker.endpoints.chat]
variants = [{{ engine = "default", dialect = "openai" }}]

[sagemaker.endpoints.tgi-broken]
variants = [{{ engine = "broken", dialect = "tgi" }}]

[sagemaker.endpoints.echo]
variants = [{{ url = {url()}, max_concurrent_invocations_per_instance = 8 }}]

[sagemaker.endpoints.bulk]
variants = [{{ url = {url("bulk")} }}]

[sagemaker.endpoints.slow]
variants = [{{ url = {url("slow")} }}]

[sagemaker.endpoints.broken]
variants = [{{ url = {url("broken")} }}]

[sagemaker.endpoints.hang]
invocation_timeout_s = {STREAM_TIMEOUT_S}
variants = [{{ url = {url("hang")} }}]

[sagemaker.endpoints.hangstream]
invocation_timeout_s = {STREAM_TIMEOUT_S}
variants = [{{ url = {url("hangstream")} }}]

[sagemaker.endpoints.fail400]
variants = [{{ url = {url("fail400")} }}]

[sagemaker.endpoints.fail500]
variants = [{{ url = {url("fail500")} }}]

[sagemaker.endpoints.notready]
variants = [{{ url = {url("notready")} }}]

[sagemaker.endpoints.notready-js]
variants = [{{ url = {url("notready-js")} }}]

[sagemaker.endpoints.garbage]
variants = [{{ url = {json.dumps(container.garbage_url)} }}]

[[sagemaker.endpoints.ab.variants]]
name = "A"
weight = 3
engine = "default"
dialect = "tgi"
max_concurrent_invocations_per_instance = 8

[[sagemaker.endpoints.ab.variants]]
name = "B"
weight = 1
url = {url("variant-b")}
max_concurrent_invocations_per_instance = 8

[[sagemaker.endpoints.pinned.variants]]
name = "Pinned"
instance_count = 2
max_concurrent_invocations_per_instance = 4
url = [{url("instance-0")}, {url("instance-1")}]

[[sagemaker.endpoints.sticky.variants]]
name = "Left"
engine = "default"
dialect = "lmi"

[[sagemaker.endpoints.sticky.variants]]
name = "Right"
engine = "default"
dialect = "lmi"

[sagemaker.endpoints.short-session]
session_ttl_s = 3
variants = [{{ engine = "default", dialect = "lmi" }}]

[[sagemaker.endpoints.multi.variants]]
name = "Direct"
containers.first = {{ url = {url("first")} }}
containers.second = {{ engine = "default", dialect = "lmi" }}

[sagemaker.endpoints.components]
variants = [{{ name = "Shared", engine = "default", dialect = "tgi" }}]
[sagemaker.endpoints.components.inference_components.small]
engine = "default"
dialect = "lmi"
[sagemaker.endpoints.components.inference_components.remote]
url = {url("component-remote")}

[sagemaker.endpoints.one-at-a-time]
variants = [{{ url = {url("counted")}, instance_count = 1 }}]

[sagemaker.endpoints.two-at-a-time]
variants = [{{ url = {url("counted")}, instance_count = 2 }}]
"""


@dataclass(frozen=True)
class SageMakerSetup:
    server: ServerProcess
    container: RunningContainer
    s3_root: Path

    def container_post(self, path: str) -> bytes:
        request = urllib.request.Request(self.container.url(path), data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())

    def container_get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.container.url(path), timeout=5) as response:
            return bytes(response.read())


@pytest.fixture(scope="session")
def sagemaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerSetup]:
    s3_root = tmp_path_factory.mktemp("s3")
    with running_container() as container:
        config = tmp_path_factory.mktemp("sagemaker") / "outcrop.toml"
        config.write_text(config_text(container, s3_root))
        with running_server(["--config", str(config)]) as server:
            yield SageMakerSetup(server, container, s3_root)
