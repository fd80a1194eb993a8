"""Job states: the one owner. Lab + output store + SLURM's view -> one consistent snapshot.

Every command that shows or uses a job's state reads it here: ``repx status``, ``repx list
jobs --status``, ``repx show``, ``repx viz``, ``repx.Lab.jobs()`` (:func:`read_status`), and
``repx run`` deciding what is done (:func:`intact_successes`).

Reading order (why no job is ever seen going backwards while a run commits):

1. SLURM (only for jobs submitted from the store and not settled in it): ``squeue``;
2. the attempts in progress (``.work``) and their locks (tested, never taken);
3. the index (``completions.jsonl`` and the ``outputs/`` listing), then one ``lstat`` of
   each success's ``out/``, FAIL marker and declared outputs.

A job moves pending -> running -> succeeded/failed, and each step leaves a trace that a
later read sees: a job that commits after step 2 is in the index of step 3, and a
committed result wins over a lock or a SLURM state. A task SLURM reports ended while its
wrapper still commits holds its lock: ``running``, then the store's result.

Rules, per job (the store's facts first): a succeeded, intact attempt -> ``succeeded``;
lock held -> ``running``; submitted to SLURM after its last result -> SLURM's state
(``queued``, ``running``, ``cancelled``, ``failed``, ``blocked``); last attempt not
succeeded -> ``failed``. Anything else is propagated over one topological order of data
inputs and run dependencies: ``blocked`` when something it needs failed, was blocked or
cancelled (a soft run dependency only needs its run to finish), ``pending`` when all it needs
succeeded, else ``waiting``. A success whose outputs were damaged (``out/`` gone or a
symlink, a declared output deleted, the attempt marked FAIL) is not done: its reason says
why and ``repx run`` reruns it.

A missing base directory or an unreadable store is not an error here: every job is then
``pending`` or ``waiting`` (``repx status`` refuses a directory that is not a store).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from repx.errors import RepxError, UsageError
from repx.lab.loader import LoadedLab
from repx.lab.models import ScatterGather
from repx.run import pieces
from repx.run.pieces import Progress

if TYPE_CHECKING:
    from repx.inspect.scheduler import Queued
    from repx.run.store import Store, StoreIndex

logger = logging.getLogger(__name__)

#: Names inside ``<base>/outputs/<job>/`` (see repx.run.store; kept here so that reading
#: states does not import the runner).
_OUT: Final = "out"
_REPX: Final = "repx"
_LOGS: Final = {"stdout": "stdout.log", "stderr": "stderr.log"}
_SUCCEEDED: Final = "succeeded"
#: Run-dependency nodes of the propagation (job ids never contain ':').
_BARRIER: Final = "run:"
_NEEDS_FAILED: Final = "a job it needs did not succeed"


class JobState(StrEnum):
    """The state of a job: the one enum of ``repx status``, ``list``, ``show`` and the API."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RUNNING = "running"
    #: submitted to SLURM and waiting there (dependencies, priority, resources)
    QUEUED = "queued"
    #: not done, nothing it needs is missing: the next ``repx run`` starts it
    PENDING = "pending"
    #: something it needs has not succeeded yet
    WAITING = "waiting"
    #: something it needs failed, was blocked or cancelled
    BLOCKED = "blocked"
    #: cancelled in SLURM before it ran (``repx cancel``, ``scancel``)
    CANCELLED = "cancelled"


#: States only SLURM targets have (tables show them when some job is in them).
SCHEDULER_STATES: Final = (JobState.QUEUED, JobState.CANCELLED)
#: States after which what needs the job never runs.
NOT_SUCCEEDING: Final = frozenset({JobState.FAILED, JobState.BLOCKED, JobState.CANCELLED})
#: States of a job that will not change without a new ``repx run``.
FINISHED: Final = NOT_SUCCEEDING | {JobState.SUCCEEDED}


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
    #: host paths the job saw (an impure run: NOT reproducible); empty when hermetic
    impure: tuple[str, ...] = ()

    @property
    def duration(self) -> float | None:
        """Wall-clock seconds, when both ends are known."""
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class StatusView:
    """The state of every job of a lab in one output store (``base``): one snapshot."""

    base: Path | None
    states: Mapping[str, JobState]
    #: job -> its last record in the store, as read (see :meth:`attempt`)
    records: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: True when the store knows at least one job of the lab (it has been run there).
    executed: bool = False
    #: job -> why it is in its state (failed, blocked, queued, a damaged success)
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: job -> its SLURM task (``123_4``) when SLURM decided its state
    slurm_ids: Mapping[str, str] = field(default_factory=dict)

    def state(self, job: str) -> JobState:
        """State of ``job`` (pending for a job the view does not know)."""
        return self.states.get(job, JobState.PENDING)

    def reason(self, job: str) -> str | None:
        """Why ``job`` is in its state, when there is more to say than the state."""
        return self.reasons.get(job)

    def slurm_id(self, job: str) -> str | None:
        """The SLURM task whose state ``job`` shows."""
        return self.slurm_ids.get(job)

    def exit_code(self, job: str) -> int | None:
        """The exit status of a failed job's last attempt (None otherwise)."""
        if self.state(job) is not JobState.FAILED or job in self.slurm_ids:
            return None
        attempt = self.attempt(job)
        return attempt.exit_code if attempt is not None else None

    def impure(self, job: str) -> tuple[str, ...]:
        """Host paths the job's last attempt saw (empty: it ran hermetically, or never)."""
        record = self.records.get(job)
        impure = record.get("impure") if record is not None else None
        return tuple(str(p) for p in impure) if isinstance(impure, list) and impure else ()

    def done(self, job: str) -> bool:
        """True when the job's outputs are there and intact."""
        return self.state(job) is JobState.SUCCEEDED

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
        return output_dir(self.base, job)

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

    def branches(self, job: str, layout: ScatterGather | None) -> Progress | None:
        """How many branches of a scatter-gather job are complete (None: not one, or
        its scatter has not run in this store)."""
        if layout is None or self.base is None:
            return None
        return pieces.progress(os.fspath(self.base / "outputs"), job, layout)

    def counts(self, jobs: Iterable[str]) -> dict[JobState, int]:
        """How many of ``jobs`` are in each state (every state is a key)."""
        counts = dict.fromkeys(JobState, 0)
        for job in jobs:
            counts[self.state(job)] += 1
        return counts


def output_dir(base: Path | None, job: str) -> Path | None:
    """``<base>/outputs/<job>/out`` (None without a base directory)."""
    return None if base is None else base / "outputs" / job / _OUT


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


# -- the snapshot ---------------------------------------------------------------------


@dataclass
class _Facts:
    """What the scheduler and the store say of each job, before propagation."""

    own: dict[str, JobState] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    slurm_ids: dict[str, str] = field(default_factory=dict)
    records: dict[str, Mapping[str, object]] = field(default_factory=dict)
    #: the store knows some job of the lab (a scoped snapshot's records may miss it)
    executed: bool = False


def read_status(
    lab: LoadedLab,
    base: Path | None,
    *,
    scheduler: bool = True,
    only: Iterable[str] | None = None,
) -> StatusView:
    """One snapshot of every job of ``lab`` in the output store at ``base`` (never fails).

    ``scheduler``: ask SLURM about jobs submitted from ``base`` (one ``squeue`` call, only
    when some submitted job has not settled in the store). ``only``: the snapshot of these
    jobs (``repx show job``): the same facts and rules, read for them and what they need
    (:func:`upstream_closure`) instead of every job; other jobs' states are not in it.
    """
    scope = None if only is None else upstream_closure(lab, only)
    facts = _Facts()
    if base is not None and base.is_dir():
        try:
            facts = _read_facts(lab, base, scheduler=scheduler, scope=scope)
        except (RepxError, OSError, ValueError) as exc:
            message = exc.message if isinstance(exc, RepxError) else str(exc)
            logger.warning("cannot read the output store %s: %s", base, message)
    states, reasons = propagate(lab, facts.own, facts.reasons, scope=scope)
    executed = facts.executed or bool(facts.own or facts.records)
    return StatusView(base, states, facts.records, executed, reasons, facts.slurm_ids)


def upstream_closure(lab: LoadedLab, jobs: Iterable[str]) -> set[str]:
    """``jobs`` (those of ``lab``) and every job their states depend on: data inputs and
    the jobs of the runs their runs depend on, transitively."""
    preds = _predecessors(lab)
    found: set[str] = set()
    stack = [job for job in jobs if job in lab.jobs]
    seen_nodes: set[str] = set()
    while stack:
        node = stack.pop()
        if node in seen_nodes:
            continue
        seen_nodes.add(node)
        if not node.startswith(_BARRIER):
            found.add(node)
        stack.extend(u for u in preds(node) if u not in seen_nodes)
    return found


def intact_successes(
    lab: LoadedLab, store: Store, index: StoreIndex, *, scope: Collection[str] | None = None
) -> tuple[set[str], dict[str, str]]:
    """(jobs of ``lab`` whose success in ``index`` is intact, damaged success -> why).

    The one notion of "done": ``repx run`` prunes with it, ``repx status`` shows it.
    ``scope``: only these jobs of the lab are checked.
    """
    jobs: Collection[str] = lab.jobs if scope is None else scope
    candidates = index.committed if scope is None or len(scope) > len(index.committed) else scope
    succeeded = [job for job in candidates if job in jobs and index.succeeded(job)]
    outputs = _Declared(lab)
    damaged = store.damages((job, outputs[job]) for job in succeeded)
    done = {job for job in succeeded if job not in damaged}
    for job in list(damaged):
        # A new attempt committed (rename) and its record not appended yet: result.json
        # is the truth (rare: only damaged successes are read).
        found = store.read_result(job)
        if found is None or found.attempt == index.records.get(job, {}).get("attempt"):
            continue
        index.records[job] = found.model_dump(mode="json")
        why = store.damage(job, outputs[job]) if found.succeeded else None
        if found.succeeded and why is None:
            done.add(job)
        if why is None:
            del damaged[job]  # intact after all, or a committed failure the record now shows
        else:
            damaged[job] = why
    return done, damaged


class RunCause(StrEnum):
    """Why ``repx run`` would run a job (``repx run --dry-run``): the stable names of
    ``--json``'s ``cause``."""

    #: never run in this store, and nothing earlier says more
    NEW = "new"
    #: a parameter value (or combination) the earlier lab did not sweep
    NEW_PARAMETER = "new-parameter"
    #: the earlier lab's job of the same run, stage and parameters had another script
    SCRIPT_CHANGED = "script-changed"
    #: the earlier lab's job of the same run, stage and parameters read other upstream jobs
    UPSTREAM_CHANGED = "upstream-changed"
    #: it succeeded here, but its outputs are gone or damaged
    OUTPUT_MISSING = "output-missing"
    #: its last attempt here failed (or could not start, or was interrupted)
    PREVIOUS_FAILED = "previous-failed"
    #: its outputs are intact and ``--force`` asked for it
    FORCED = "forced"


def store_cause(
    job: str, index: StoreIndex, damaged: Mapping[str, str]
) -> tuple[RunCause, str] | None:
    """What the store says about a job that is not done (None: it never ran there).

    ``damaged`` is :func:`intact_successes`' second value: the facts are the ones ``repx
    run`` pruned with.
    """
    if job in damaged:
        return RunCause.OUTPUT_MISSING, f"its outputs were damaged: {damaged[job]}"
    record = index.records.get(job)
    if record is None:
        return None
    status = record.get("status")
    if status == _SUCCEEDED:
        return RunCause.OUTPUT_MISSING, f"outputs/{job} is missing (it succeeded before)"
    exit_code = record.get("exit_code")
    text = record.get("reason")
    parts = [f"exit {exit_code}"] if isinstance(exit_code, int) else []
    if isinstance(text, str) and text:
        parts.append(text)
    detail = f" ({': '.join(parts)})" if parts else ""
    return RunCause.PREVIOUS_FAILED, f"previous attempt {status}{detail}"


class _Declared:
    """job -> its declared outputs relative to ``out/`` (shared by the jobs of a stage), as
    the runner resolves them (:func:`repx.run.spec.output_path`: the job's own check)."""

    def __init__(self, lab: LoadedLab) -> None:
        from repx.run.spec import output_path  # noqa: PLC0415 (only when a store exists)

        self._facts = lab.facts  # not whole records: 10^5 of them would cost seconds
        self._relative = output_path
        self._seen: dict[tuple[str, ...], list[str]] = {}

    def __getitem__(self, job: str) -> list[str]:
        paths = tuple(self._facts[job].outputs.values())
        found = self._seen.get(paths)
        if found is None:
            found = self._seen[paths] = [self._relative(p) for p in paths]
        return found


def _read_facts(
    lab: LoadedLab, base: Path, *, scheduler: bool, scope: Collection[str] | None = None
) -> _Facts:
    from repx.inspect import scheduler as queue  # noqa: PLC0415 (SLURM only when used)
    from repx.run.store import Store  # noqa: PLC0415 (only when a store exists)

    store = Store.existing(base)
    jobs: Collection[str] = lab.jobs if scope is None else scope
    # 1. SLURM, for the jobs its submissions name that the store has not settled.
    slurm_view: dict[str, Queued] = {}
    only = None if scope is None else jobs
    if scheduler and queue.has_submissions(base):
        slurm_view = queue.read_queue(base, jobs, store.read_index(only).records)
    # 2. Attempts in progress and locks, before the index (see the module docstring). A
    # task SLURM says ended may still be committing under its lock: probed too.
    probe = {job for job in store.attempts_in_progress() if job in jobs}
    probe.update(job for job, queued in slurm_view.items() if not queued.active)
    running = {job for job in probe if _is_locked(store, job)}
    # 3. The index, and the intact successes.
    index = store.read_index(only)
    done, damaged = intact_successes(lab, store, index, scope=scope)
    records: dict[str, Mapping[str, object]]
    if scope is None:
        records = {job: rec for job, rec in index.records.items() if job in jobs}
    else:
        records = {job: index.records[job] for job in scope if job in index.records}
    executed = bool(records) or any(job in lab.jobs for job in index.records)
    facts = _Facts(records=records, executed=executed)
    for job in done:
        facts.own[job] = JobState.SUCCEEDED
    for job in running - done:
        facts.own[job] = JobState.RUNNING
    for job, queued in slurm_view.items():
        if job in facts.own or queue.result_is_newer(facts.records.get(job), queued.ref):
            continue  # the store's facts win
        state, reason = _slurm_state(queued)
        if state is not None:
            facts.own[job] = state
            facts.slurm_ids[job] = queued.entry.job_id
            if reason:
                facts.reasons[job] = reason
    for job, record in facts.records.items():
        if job in facts.own or record.get("status") == _SUCCEEDED:
            continue
        facts.own[job] = JobState.FAILED
        text = record.get("reason")
        if isinstance(text, str) and text:
            facts.reasons[job] = text
    for job, why in damaged.items():
        if job not in facts.own:
            facts.reasons[job] = why
    for job in facts.records:
        if job not in facts.own and job not in index.committed:
            facts.reasons[job] = f"outputs/{job} is missing"  # deleted since it succeeded
    return facts


def _slurm_state(queued: Queued) -> tuple[JobState | None, str | None]:
    from repx import slurm  # noqa: PLC0415

    entry, ref = queued.entry, queued.ref
    if entry.never_runs:
        return JobState.BLOCKED, _NEEDS_FAILED
    if entry.state.queued:
        return JobState.QUEUED, entry.reason if entry.reason not in ("None", "") else None
    if entry.state.running:
        return JobState.RUNNING, None
    if entry.state is slurm.JobState.COMPLETED:
        return None, None  # the store says how it went
    if entry.state is slurm.JobState.CANCELLED:
        if entry.reason == "DependencyNeverSatisfied":
            return JobState.BLOCKED, _NEEDS_FAILED
        return JobState.CANCELLED, None
    reason = f"SLURM: {entry.state.value}" + (
        f" ({entry.reason})" if entry.reason not in ("None", "") else ""
    )
    return JobState.FAILED, f"{reason}; log: {ref.log}"


def _is_locked(store: Store, job: str) -> bool:
    try:
        return store.is_locked(job)
    except OSError:  # an unreadable lock file: nobody we can see is running it
        return False


# -- propagation ------------------------------------------------------------------------


def _predecessors(lab: LoadedLab) -> Callable[[str], list[str]]:
    """node -> the nodes its state depends on: a job's data inputs and run-dependency
    barriers (``run:<run>:<kind>``), a barrier's jobs of that run."""
    jobs = lab.jobs
    upstream = lab.upstream  # the job index's: no record read
    runs = lab.runs
    deps = {name: entry.depends_on for name, entry in lab.revision.runs.items()}

    def preds(node: str) -> list[str]:
        if node.startswith(_BARRIER):
            dep = node[len(_BARRIER) :].rpartition(":")[0]
            return list(runs[dep].jobs) if dep in runs else []
        found = [job for job in upstream[node] if job in jobs]
        for run in lab.job_runs.get(node, ()):
            for dep, kind in deps.get(run, {}).items():
                # a job listed in both runs is part of the dependency: it cannot wait for it
                if dep in runs and node not in runs[dep].jobs:
                    found.append(f"{_BARRIER}{dep}:{kind}")
        return found

    return preds


def propagate(
    lab: LoadedLab,
    own: Mapping[str, JobState],
    reasons: Mapping[str, str],
    *,
    scope: Collection[str] | None = None,
) -> tuple[dict[str, JobState], dict[str, str]]:
    """Every job's state from the jobs' own states (``own``; absent: not settled), over one
    topological order of data inputs and run dependencies (hard: every job of the run must
    succeed; soft: every job must finish). Returns (states, reasons). ``scope``: the jobs
    to return, closed under what they depend on (:func:`upstream_closure`)."""
    jobs: Collection[str] = lab.jobs if scope is None else scope
    preds = _predecessors(lab)
    states: dict[str, JobState] = {}
    why: dict[str, str] = dict(reasons)
    visiting: set[str] = set()
    for start in jobs:
        if start in states:
            continue
        stack = [start]
        while stack:
            node = stack[-1]
            if node in states:
                stack.pop()
                continue
            settled = own.get(node)
            if settled is not None and settled is not JobState.QUEUED:
                states[node] = settled  # its own state whatever is upstream (_job_state)
                stack.pop()
                continue
            ups = preds(node)
            todo = [u for u in ups if u not in states and u not in visiting]
            if todo:
                visiting.add(node)
                stack.extend(todo)
                continue
            stack.pop()
            visiting.discard(node)
            # an upstream node still being visited closes a cycle (invalid lab): it waits
            up_states = [(u, states.get(u, JobState.WAITING)) for u in ups]
            if node.startswith(_BARRIER):
                states[node] = _barrier_state(node, up_states)
            else:
                states[node] = _job_state(node, own.get(node), up_states, why)
    return {job: states[job] for job in jobs}, why


def _barrier_state(node: str, members: list[tuple[str, JobState]]) -> JobState:
    if node.endswith(":soft"):
        finished = all(s in FINISHED for _, s in members)
        return JobState.SUCCEEDED if finished else JobState.WAITING
    if any(s in NOT_SUCCEEDING for _, s in members):
        return JobState.BLOCKED
    if all(s is JobState.SUCCEEDED for _, s in members):
        return JobState.SUCCEEDED
    return JobState.WAITING


def _job_state(
    job: str, own: JobState | None, ups: list[tuple[str, JobState]], why: dict[str, str]
) -> JobState:
    if own is not None and own is not JobState.QUEUED:
        return own
    failing = next(((u, s) for u, s in ups if s in NOT_SUCCEEDING), None)
    if failing is not None:
        # queued behind a job that will not succeed: SLURM drops it soon
        up, state = failing
        if up.startswith(_BARRIER):
            run = up[len(_BARRIER) :].rpartition(":")[0]
            why[job] = f"run '{run}' it depends on did not succeed"
        else:
            why[job] = f"{_NEEDS_FAILED} ({up}: {state})"
        return JobState.BLOCKED
    if own is JobState.QUEUED:
        return own
    if all(s is JobState.SUCCEEDED for _, s in ups):
        return JobState.PENDING
    return JobState.WAITING


def _attempt(record: Mapping[str, object]) -> Attempt:
    def num(key: str) -> float | None:
        value = record.get(key)
        return float(value) if isinstance(value, int | float) else None

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) else None

    exit_code = record.get("exit_code")
    rss = record.get("max_rss_kib")
    impure = record.get("impure")
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
        impure=tuple(str(p) for p in impure) if isinstance(impure, list) else (),
    )
