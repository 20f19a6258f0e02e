"""What a job kind is: a typed spec, a function, and whether a crashed run may simply be retried.

A kind lives in the package that owns the capability (``modelyard.migrate.jobs``, ...) and is named in
``modelyard.core.plugins.JOB_KINDS``. The job machinery (``modelyard.jobs``) knows kinds only through this file.

Example::

    class VerifySpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        sample: int | None = None

    def verify(spec: VerifySpec, ctx: JobContext) -> dict:
        ctx.progress(0.5, "half way")
        return {"ok": True}

    BLOB_VERIFY = JobKind("blob.verify", VerifySpec, verify, idempotent=True, description="...")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel


class JobContext(Protocol):
    """What a running job may touch. Given to ``JobKind.run``; never constructed by kinds (a worker gives its own;
    :class:`LocalJobContext` runs a kind in this process)."""

    job_id: str
    workdir: Path  # a folder of the job's own for outputs; results should name files in it
    home: Path  # the workspace folder

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in 0..1 with a short message; cheap to call often (rate-limited)."""

    def log(self, message: str) -> None:
        """Append a timestamped line to the job's log."""

    def cancelled(self) -> bool:
        """True once a cancel was requested; long loops may check it to stop cleanly."""


@dataclass(frozen=True)
class JobKind:
    """A registered kind of job.

    Args:
        name: the public name, ``noun.verb`` (``blob.verify``).
        spec_model: pydantic model the submitted spec must validate against (422 naming the field otherwise).
        run: ``run(spec, ctx) -> dict``; the dict (JSON-able) becomes the job's result.
        idempotent: a run interrupted by a crash is re-queued instead of failed.
        description: one line for ``modelyard jobs kinds`` and the API.
        max_attempts: how many times an idempotent job is re-queued before it is failed.
        authorize: ``authorize(spec, caller, workspace)`` checks a validated spec against who submitted it
            (``modelyard.core.trust``: code and server paths need the admin role) and that what it names exists;
            raises ``Forbidden``/``InvalidInput``/``NotFound``. Called at submit for every API request. A kind whose
            spec names no code and no paths needs none.
    """

    name: str
    spec_model: type[BaseModel]
    run: Callable[[Any, JobContext], dict]
    idempotent: bool = False
    description: str = ""
    max_attempts: int = 3
    authorize: Callable[[Any, Any, Any], None] | None = None

    def validate_spec(self, spec: dict | None) -> BaseModel:
        return self.spec_model.model_validate(spec or {})


@dataclass
class LocalJobContext:
    """A :class:`JobContext` without a queue or a worker: runs a kind in this process and records what it reports.

    For tests of a kind and for scripts: ``kind.run(spec, LocalJobContext(home=tmp))``. It makes no folder (the
    caller owns ``home``; a kind creates what it writes under ``workdir``).

    Args:
        home: the workspace folder.
        workdir: the job's own folder; default ``home / "work"``.
        job_id: default ``"job_local"``.
        on_progress: called with each ``(fraction, message)`` after it is recorded, e.g. to simulate a crash
            mid-job by raising.

    Attributes:
        progress_events: every ``(fraction, message)`` reported, in order (no rate limit).
        lines: every log line, without a timestamp.
        cancel_requested: what ``cancelled()`` answers; ``cancel()`` sets it.
    """

    home: Path
    workdir: Path | None = None
    job_id: str = "job_local"
    on_progress: Callable[[float, str], None] | None = None
    progress_events: list[tuple[float, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    cancel_requested: bool = False

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.workdir = self.home / "work" if self.workdir is None else Path(self.workdir)

    def progress(self, fraction: float, message: str = "") -> None:
        self.progress_events.append((fraction, message))
        if self.on_progress is not None:
            self.on_progress(fraction, message)

    def log(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return self.cancel_requested

    def cancel(self) -> None:
        self.cancel_requested = True
