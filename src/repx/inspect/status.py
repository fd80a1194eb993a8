"""Job states from the output store: the one adapter between inspection and ``repx run``.

Everything inspection knows about executions comes through :func:`read_status`, which
reads the store through :class:`repx.run.store.Store` (``<base>/outputs/<job>/{out,repx}``,
``<base>/completions.jsonl``: one index read and one ``readdir``, no per-job access). The
states are those of ``repx status``. A missing base directory or an unreadable store is
not an error: every job is then ``pending`` (nothing upstream) or ``waiting``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from repx.errors import RepxError, UsageError
from repx.lab.loader import LoadedLab

if TYPE_CHECKING:
    from repx.run.store import Store

logger = logging.getLogger(__name__)

#: Names inside ``<base>/outputs/<job>/`` (see repx.run.store; kept here so that reading
#: states does not import the runner).
_OUT: Final = "out"
_REPX: Final = "repx"
_LOGS: Final = {"stdout": "stdout.log", "stderr": "stderr.log"}
_SUCCEEDED: Final = "succeeded"


class JobState(StrEnum):
    """The state of a job in an output store (the states of ``repx status``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RUNNING = "running"
    #: nothing upstream is missing: the next ``repx run`` starts it
    PENDING = "pending"
    #: an upstream job has not succeeded yet
    WAITING = "waiting"
    #: an upstream job failed
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Attempt:
    """The last recorded attempt to run a job."""

    status: str
    exit_code: int | None
    reason: str | None
    start: float | None
    end: float | None
    host: str | None
    runtime: str | None
    cpu_seconds: float | None = None
    max_rss_kib: int | None = None

    @property
    def duration(self) -> float | None:
        """Wall-clock seconds, when both ends are known."""
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class StatusView:
    """The state of every job of a lab in one output store (``base``)."""

    base: Path | None
    states: Mapping[str, JobState]
    #: job -> its last record in the store, as read (see :meth:`attempt`)
    records: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: True when the store knows at least one job of the lab (it has been run there).
    executed: bool = False

    def state(self, job: str) -> JobState:
        """State of ``job`` (pending for a job the view does not know)."""
        return self.states.get(job, JobState.PENDING)

    def attempt(self, job: str) -> Attempt | None:
        """The last recorded attempt to run ``job``."""
        record = self.records.get(job)
        return None if record is None else _attempt(record)

    @property
    def attempts(self) -> Mapping[str, Attempt]:
        """job -> its last recorded attempt (each built when looked up)."""
        return _Attempts(self.records)

    def output_dir(self, job: str) -> Path | None:
        """``<base>/outputs/<job>/out``: where the job's outputs are once it succeeded."""
        return None if self.base is None else self.base / "outputs" / job / _OUT

    def log_paths(self, job: str) -> dict[str, Path]:
        """The stdout and stderr logs of the job's last committed attempt (if any)."""
        if self.base is None or job not in self.records:
            return {}
        repx_dir = self.base / "outputs" / job / _REPX
        return {
            name: repx_dir / file
            for name, file in _LOGS.items()
            if os.path.isfile(repx_dir / file)  # noqa: PTH113 (a Path, called twice)
        }

    def counts(self, jobs: Iterable[str]) -> dict[JobState, int]:
        """How many of ``jobs`` are in each state (every state is a key)."""
        counts = dict.fromkeys(JobState, 0)
        for job in jobs:
            counts[self.state(job)] += 1
        return counts


class _Attempts(Mapping[str, Attempt]):
    """A read-only view of store records as :class:`Attempt` objects."""

    def __init__(self, records: Mapping[str, Mapping[str, object]]) -> None:
        self._records = records

    def __getitem__(self, job: str) -> Attempt:
        return _attempt(self._records[job])

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


def find_base(cli_base: Path | None, target: str | None) -> Path:
    """The output store as ``repx run`` picks it: ``--base``, the target's base, the default.

    A broken configuration file is reported as a warning unless a target was asked for:
    inspecting a lab must not depend on it.
    """
    from repx.config import Target, load_config, resolve_base, select_target  # noqa: PLC0415

    if cli_base is not None:
        return resolve_base(cli_base, Target())
    try:
        _, chosen = select_target(load_config(), target)
    except UsageError as exc:
        if target is not None:
            raise
        logger.warning("%s (using the default base directory)", exc.message)
        chosen = Target()
    return resolve_base(None, chosen)


def read_status(lab: LoadedLab, base: Path | None) -> StatusView:
    """Read the state of every job of ``lab`` in the output store at ``base`` (never fails)."""
    succeeded: set[str] = set()
    running: set[str] = set()
    records: dict[str, Mapping[str, object]] = {}
    if base is not None and base.is_dir():
        try:
            succeeded, running, records = _read_store(lab, base)
        except (RepxError, OSError, ValueError) as exc:
            message = exc.message if isinstance(exc, RepxError) else str(exc)
            logger.warning("cannot read the output store %s: %s", base, message)
    failed = {job for job, record in records.items() if record.get("status") != _SUCCEEDED}
    states = derive_states(lab, succeeded, running, failed)
    executed = bool(succeeded or running or records)
    return StatusView(base, states, records, executed)


def derive_states(
    lab: LoadedLab, succeeded: set[str], running: set[str], failed: set[str]
) -> dict[str, JobState]:
    """Each job's state from what the store says of it and of its upstream jobs.

    The rules of ``repx status``: succeeded, else running, else failed (last attempt did
    not succeed), else blocked (an upstream job failed or is blocked), else pending when
    every upstream job succeeded, else waiting.
    """
    jobs = lab.jobs
    if not (succeeded or running or failed):  # never run here: no need to walk the graph
        return {
            job_id: JobState.WAITING if any(i.job in jobs for i in job.inputs) else JobState.PENDING
            for job_id, job in jobs.items()
        }
    states: dict[str, JobState] = {}
    visiting: set[str] = set()
    for start, start_job in jobs.items():
        if start in states:
            continue
        if not start_job.inputs:  # most jobs of a sweep: no upstream to wait for
            states[start] = _own_state(start, succeeded, running, failed, [])
            continue
        stack = [start]
        while stack:
            job = stack[-1]
            if job in states:
                stack.pop()
                continue
            upstream = [i.job for i in jobs[job].inputs if i.job in jobs]
            todo = [u for u in upstream if u not in states and u not in visiting]
            if todo:
                visiting.add(job)
                stack.extend(todo)
                continue
            stack.pop()
            visiting.discard(job)
            # an upstream job still being visited closes a cycle (invalid lab): it waits
            ups = [states.get(u, JobState.WAITING) for u in upstream]
            states[job] = _own_state(job, succeeded, running, failed, ups)
    return states


def _own_state(
    job: str, succeeded: set[str], running: set[str], failed: set[str], ups: list[JobState]
) -> JobState:
    if job in succeeded:
        return JobState.SUCCEEDED
    if job in running:
        return JobState.RUNNING
    if job in failed:
        return JobState.FAILED
    if any(s in (JobState.FAILED, JobState.BLOCKED) for s in ups):
        return JobState.BLOCKED
    if all(s is JobState.SUCCEEDED for s in ups):
        return JobState.PENDING
    return JobState.WAITING


def _read_store(
    lab: LoadedLab, base: Path
) -> tuple[set[str], set[str], dict[str, Mapping[str, object]]]:
    from repx.run.store import Store  # noqa: PLC0415 (only when a store exists)

    store = Store.existing(base)
    index = store.read_index()
    jobs = lab.jobs
    succeeded = {job for job in index.committed if job in jobs and index.succeeded(job)}
    records: dict[str, Mapping[str, object]] = {
        job: rec for job, rec in index.records.items() if job in jobs
    }
    running: set[str] = set()
    for job in store.attempts_in_progress():
        if job in jobs and job not in succeeded and _is_locked(store, job):
            running.add(job)
    return succeeded, running, records


def _is_locked(store: Store, job: str) -> bool:
    try:
        return store.is_locked(job)
    except OSError:  # a read-only store: nobody can be running there from here
        return False


def _attempt(record: Mapping[str, object]) -> Attempt:
    def num(key: str) -> float | None:
        value = record.get(key)
        return float(value) if isinstance(value, int | float) else None

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) else None

    exit_code = record.get("exit_code")
    rss = record.get("max_rss_kib")
    return Attempt(
        status=str(record.get("status")),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        reason=text("reason"),
        start=num("start"),
        end=num("end"),
        host=text("host"),
        runtime=text("runtime"),
        cpu_seconds=num("cpu_seconds"),
        max_rss_kib=rss if isinstance(rss, int) else None,
    )
