"""A llama.cpp server Outcrop does not start: an `upstreams` entry of a `llamacpp` engine
(docs/engine-pools.md). It stands where the managed child (`llama_server.LlamaServerProcess`)
would: the engine talks to it the same way (`/tokenize`, `/completion` with token ids, the
prompt cache, grammars), and reads the chat template, BOS token and context size from its
`/props` and `/tokenize` instead of the GGUF file, which need not be on this machine. Nothing
restarts it; while it is down, requests fail over to the pool's other upstreams.
"""

from __future__ import annotations

import urllib.parse

import aiohttp

from outcrop.engines.base import EngineUnavailable
from outcrop.engines.llama_server import LlamaServerProcess


class ExternalLlamaServer(LlamaServerProcess):
    """A running llama-server at `url` (e.g. `http://gpu-1:8080`), ready once `/health` is 200."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, lambda port: [], lambda state, detail: None)
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._url = url.rstrip("/")

    @property
    def base_url(self) -> str:
        return self._url

    async def start(self) -> None:
        """Wait until the server answers `/health` (however long it takes)."""
        while not self._closing:
            try:
                await self._wait_ready()
                return
            except EngineUnavailable:
                continue

    async def stop(self) -> None:
        self._closing = True


async def props_metadata(
    session: aiohttp.ClientSession, base_url: str
) -> dict[str, str | int | float | bool]:
    """The GGUF metadata the engine needs, as the server reports it: the chat template (from
    `/props`) and the BOS token id (what `/tokenize` of an empty text with specials gives)."""
    async with session.get(f"{base_url}/props") as response:
        props = await response.json()
    async with session.post(
        f"{base_url}/tokenize", json={"content": "", "add_special": True}
    ) as response:
        tokens = (await response.json()).get("tokens") or []
    metadata: dict[str, str | int | float | bool] = {}
    template = props.get("chat_template")
    if isinstance(template, str) and template:
        metadata["tokenizer.chat_template"] = template
    if tokens and isinstance(tokens[0], int):
        metadata["tokenizer.ggml.bos_token_id"] = tokens[0]
        metadata["tokenizer.ggml.add_bos_token"] = True
    else:
        metadata["tokenizer.ggml.add_bos_token"] = False
    return metadata
