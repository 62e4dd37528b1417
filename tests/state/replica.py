"""A stand-in for one replica's writes, run as its own process by the state store's tests:

    python -m tests.state.replica ack URL N          commit N documents, print "acked K" after
                                                     each commit returns, then wait for a kill
    python -m tests.state.replica increment URL N    add 1 to a shared counter N times
                                                     (read, compare-and-set, retry on conflict)
    python -m tests.state.replica version URL ID N   CreateGuardrailVersion N times on guardrail
                                                     ID, printing each number

Each waits for "go" on stdin before writing, so that processes start their writes together.
"""

from __future__ import annotations

import asyncio
import sys

from outcrop.guardrails.store import GuardrailStore
from outcrop.state.store import Put, StateConflict
from tests.state.conftest import store_for

COUNTER = ("counter", "shared")


async def main(mode: str, url: str, args: list[str]) -> None:
    store = store_for(url)
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    if mode == "ack":
        for index in range(int(args[0])):
            await store.commit([Put("ack", f"{index:05d}", {"index": index}, 0)])
            print(f"acked {index}", flush=True)
        await asyncio.Event().wait()
    elif mode == "increment":
        for _ in range(int(args[0])):
            while True:
                current = await store.get(*COUNTER)
                value = 0 if current is None else int(current.body["value"])
                try:
                    await store.commit(
                        [
                            Put(
                                *COUNTER,
                                {"value": value + 1},
                                0 if current is None else current.version,
                            )
                        ]
                    )
                    break
                except StateConflict:
                    continue
    elif mode == "version":
        guardrails = GuardrailStore(store, "123456789012")
        for _ in range(int(args[1])):
            _, number = await guardrails.create_version(args[0], None, None)
            print(f"version {number}", flush=True)
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
