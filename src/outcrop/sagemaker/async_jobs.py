"""InvokeEndpointAsync's accepted jobs, kept in the state store until they finish.

A 202 from InvokeEndpointAsync promises the caller an output (or failure) file later. The job,
everything needed to run it again (endpoint, parameters, headers, the inline body, the output
and failure locations, the time limit), is committed to the state store before the 202 is sent;
the state store failing refuses the call with SageMaker's ServiceUnavailable instead. The job's
document is removed once its output or failure file is written.

Each job is leased: its document names the replica running it (`owner`, a random token per
process) and until when (`leaseUntil`, wall-clock seconds). A running replica renews its leases
every third of `[state] job_lease_s`; a clean shutdown gives its unfinished jobs up at once
(lease 0). Every replica looks for jobs whose lease has run out (their replica was killed,
crashed or lost the store) at start and then as often as it renews, and takes each over with a
compare-and-set on its document, so one replica runs it. A job can therefore run twice (a
replica that lost its lease while still running it, or one killed between writing the output
and removing the document): delivery is at least once, and the output file is then written
again with the same content the model gave. Leases compare wall clocks: replicas' clocks must
agree to well within the lease.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outcrop.state.store import Delete, Document, Put, StateConflict, StateStore, StateUnavailable

log = logging.getLogger("outcrop.sagemaker")

KIND = "sagemaker-async-job"
DEFAULT_LEASE_S = 30.0


@dataclass(frozen=True, slots=True)
class AsyncJob:
    """An accepted InvokeEndpointAsync call, as it is run again after a restart."""

    job_id: str
    """The request ID of the call that submitted it."""
    endpoint: str
    params: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    input_location: str | None
    timeout_s: float
    output: str
    failure: str

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "endpoint": self.endpoint,
            "params": self.params,
            "headers": [list(h) for h in self.headers],
            "body": base64.b64encode(self.body).decode("ascii"),
            "inputLocation": self.input_location,
            "timeoutS": self.timeout_s,
            "output": self.output,
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AsyncJob:
        return cls(
            job_id=str(data["jobId"]),
            endpoint=str(data["endpoint"]),
            params=dict(data["params"]),
            headers=tuple((str(k), str(v)) for k, v in data["headers"]),
            body=base64.b64decode(data["body"]),
            input_location=data.get("inputLocation"),
            timeout_s=float(data["timeoutS"]),
            output=str(data["output"]),
            failure=str(data["failure"]),
        )


def storable_params(params: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters that JSON keeps as they are (all SageMaker's are strings)."""
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)}


class AsyncJobs:
    """This replica's view of the job table: accept, finish, renew, take over."""

    def __init__(
        self,
        documents: StateStore,
        lease_s: float = DEFAULT_LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex
        self._clock = clock
        self._held: dict[str, tuple[int, AsyncJob]] = {}
        """Jobs this replica runs: their document's version and the job."""

    def _document(self, job: AsyncJob, lease_until: float) -> dict[str, Any]:
        return {**job.to_json(), "owner": self.owner, "leaseUntil": lease_until}

    async def accept(self, job: AsyncJob) -> None:
        """Make the job durable, leased to this replica (StateUnavailable: not accepted)."""
        lease = self._clock() + self.lease_s
        versions = await self.documents.commit(
            [Put(KIND, job.job_id, self._document(job, lease), 0)]
        )
        self._held[job.job_id] = (versions[(KIND, job.job_id)], job)

    async def finished(self, job_id: str) -> None:
        """Its output or failure is written: forget it (a store that does not answer leaves it
        to be run again once the lease runs out)."""
        held = self._held.pop(job_id, None)
        if held is None:
            return
        try:
            await self.documents.commit([Delete(KIND, job_id, held[0])])
        except StateConflict:
            log.warning("async job %s was taken over by another replica before it finished", job_id)
        except StateUnavailable as exc:
            log.warning(
                "async job %s finished but stays in the store (%s); it will run again", job_id, exc
            )

    async def renew(self) -> list[str]:
        """Extend the leases of the jobs this replica runs; the IDs of those it lost."""
        lost = []
        lease = self._clock() + self.lease_s
        for job_id, (version, job) in list(self._held.items()):
            try:
                versions = await self.documents.commit(
                    [Put(KIND, job_id, self._document(job, lease), version)]
                )
            except StateConflict:
                self._held.pop(job_id, None)
                lost.append(job_id)
                continue
            self._held[job_id] = (versions[(KIND, job_id)], job)
        return lost

    async def release(self) -> None:
        """Give up every job this replica holds (clean shutdown): lease 0, so any replica (or
        this one's next start) takes them over at once."""
        for job_id, (version, job) in list(self._held.items()):
            try:
                await self.documents.commit([Put(KIND, job_id, self._document(job, 0.0), version)])
            except (StateConflict, StateUnavailable) as exc:
                log.warning("async job %s not released (%s)", job_id, exc)
        self._held.clear()

    async def take_over(self) -> list[AsyncJob]:
        """Jobs whose lease ran out, now leased to this replica (each to one replica only)."""
        now = self._clock()
        taken = []
        for document in await self.documents.list(KIND):
            if document.key in self._held or not _expired(document, now):
                continue
            try:
                job = AsyncJob.from_json(document.body)
            except (KeyError, ValueError, TypeError) as exc:
                log.error("async job %s is unreadable (%s); removed", document.key, exc)
                await self._discard(document)
                continue
            try:
                versions = await self.documents.commit(
                    [
                        Put(
                            KIND,
                            job.job_id,
                            self._document(job, now + self.lease_s),
                            document.version,
                        )
                    ]
                )
            except StateConflict:
                continue  # another replica took it first
            self._held[job.job_id] = (versions[(KIND, job.job_id)], job)
            taken.append(job)
        return taken

    async def _discard(self, document: Document) -> None:
        with contextlib.suppress(StateConflict):
            await self.documents.commit([Delete(KIND, document.key, document.version)])


def _expired(document: Document, now: float) -> bool:
    until = document.body.get("leaseUntil")
    return not isinstance(until, int | float) or until <= now
