"""The lifecycle of one job attempt, for local runs and SLURM tasks alike.

One lifecycle (prepare -> start -> finish) serves the local executor (in-process, many
jobs at once) and a cluster node (:func:`run_job`: ``python -m repx.run.job TASK.json``
and :mod:`repx.run.slurm_task` run one job to completion under the same locks, markers,
logs and atomic commit)::

    lock = store.try_lock(spec.job)                # or wait_for_lock(store, job, stop)
    started = launch(store, spec, lock, runtime, devnull)
    # an Attempt whose child is running, or a JobResult when it could not start
    ...                                            # process.wait_any / process.reap
    result = finish(store, attempt, exit)          # commit, release the lock

Every JobResult is built by :func:`make_result`. Signals: :class:`Stop` is installed
before anything of the job is visible (lock, attempt directory), so a SIGTERM/SIGINT at
any moment ends the job recorded as ``interrupted`` (see docs/running.md, "Signals").
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH103, PTH118, PTH120, PTH123

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from repx import process
from repx.run import protocol
from repx.run.orphans import end_orphans
from repx.run.protocol import (
    INPUTS_JSON,
    INTERRUPTED,
    PARAMETERS_JSON,
    STDERR_LOG,
    STDOUT_LOG,
)
from repx.run.protocol import checkpoint as _checkpoint
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec
from repx.run.store import OUT, REPX, JobLock, Store, StoreError
from repx.run.store_models import MISSING, JobResult, JobStatus, RunMetadata

__all__ = ["INPUTS_JSON", "INTERRUPTED", "PARAMETERS_JSON", "STDERR_LOG", "STDOUT_LOG"]

#: How often a job held by another process is looked at again (seconds).
LOCK_RETRY: Final = 0.1
_LOG_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Attempt:
    """A prepared (and possibly started) attempt of a job; it holds the job's lock."""

    spec: JobSpec
    lock: JobLock
    work: Path
    nonce: str
    runtime: str
    host: str
    start_time: float
    child: process.Child | None = None
    #: repx stopped it (then it is recorded as interrupted unless it succeeded)
    interrupted: bool = False
    impure: tuple[str, ...] = ()
    #: its process group was sent a stop signal
    signalled: bool = False
    #: what removes the attempt's container when its engine process was killed (podman,
    #: docker: the container outlives a SIGKILLed client); empty for other runtimes
    cleanup: tuple[str, ...] = ()


def make_result(
    job: str,
    lab_id: str,
    *,
    status: JobStatus,
    reason: str | None,
    host: str,
    runtime: str,
    start: float | None = None,
    attempt: str = "",
    exit: process.Exit | None = None,
    impure: tuple[str, ...] = (),
) -> JobResult:
    """The one place a :class:`JobResult` is built (``attempt=""``: nothing was recorded).

    ``start`` defaults to now (a job that never ran).
    """
    end = time.time()
    return JobResult.model_validate(
        protocol.result_fields(
            job,
            lab_id,
            status=status,
            reason=reason,
            host=host,
            runtime=runtime,
            start=end if start is None else start,
            end=end,
            attempt=attempt,
            exit_code=exit.returncode if exit is not None else None,
            cpu_seconds=exit.cpu_seconds if exit is not None else None,
            max_rss_kib=exit.max_rss_kib if exit is not None else None,
            impure=impure,
        )
    )


def unrecorded(
    store: Store, spec: JobSpec, runtime: Runtime, status: JobStatus, reason: str
) -> JobResult:
    """The result of a job that ended without an attempt in the store."""
    return make_result(
        spec.job,
        spec.lab_id,
        status=status,
        reason=reason,
        host=store.host,
        runtime=runtime.kind.value,
    )


def gather_file_name(name: str) -> str:
    """File name of a gathered input's list, inside the attempt's ``repx/``."""
    return f"gather-{_UNSAFE.sub('_', name)}.json"


def run_metadata_file_name(name: str) -> str:
    """File name of a ``metadata__<run>`` input's description, inside the attempt's ``repx/``."""
    return f"run-{_UNSAFE.sub('_', name)}.json"


def describe_statuses(store: Store, described: RunMetadata) -> dict[str, Any]:
    """``described`` as JSON data, each job with its status as the store has it now (one
    index read; a dict, not a model copy per job: ~10x cheaper for 10,000 jobs)."""
    index = store.read_index()
    data = described.model_dump(mode="json")
    for jid, job in data["jobs"].items():
        if index.succeeded(jid):
            job["status"] = JobStatus.SUCCEEDED.value
        else:
            last = index.last_status(jid)
            job["status"] = MISSING if last is None or last is JobStatus.SUCCEEDED else last.value
    return data


# -- the lifecycle -----------------------------------------------------------------------


def committed(store: Store, spec: JobSpec) -> JobResult | None:
    """The job's committed successful result, if it has one and its outputs are intact."""
    return store.read_result(spec.job) if store.committed_success(spec.job, spec.outputs) else None


def prepare(store: Store, spec: JobSpec, lock: JobLock, runtime: Runtime) -> Attempt:
    """Create the attempt directory with inputs.json, gather lists and parameters.json."""
    start_time = time.time()
    work, nonce = store.new_attempt(spec.job)
    w = os.fspath(work)
    try:
        out = os.path.join(w, OUT)
        repx = os.path.join(w, REPX)
        for rel in spec.outputs:
            parent = os.path.dirname(rel)
            if parent:
                os.makedirs(os.path.join(out, parent), exist_ok=True)
        shutil.copyfile(spec.parameters_file, os.path.join(repx, PARAMETERS_JSON))
        inputs = dict(spec.inputs)
        for name, entries in spec.gathers.items():
            path = os.path.join(repx, gather_file_name(name))
            _write(path, json.dumps([e.model_dump(mode="json") for e in entries], indent=1))
            inputs[name] = path
        inputs.update(spec.store_inputs)
        for name, described in spec.run_metadata.items():
            # statuses as of now: a soft run dependency may have failed jobs
            path = os.path.join(repx, run_metadata_file_name(name))
            # compact: with an indent json falls back to its pure-Python encoder (5x slower)
            _write(path, json.dumps(describe_statuses(store, described), separators=(",", ":")))
            inputs[name] = path
        _write(os.path.join(repx, INPUTS_JSON), json.dumps(inputs, indent=1, sort_keys=True))
    except BaseException:
        store.discard_attempt(work)
        raise
    return Attempt(
        spec,
        lock,
        work,
        nonce,
        runtime.kind.value,
        store.host,
        start_time,
        impure=runtime.impure,
        cleanup=tuple(runtime.cleanup_argv(work)),
    )


def start(attempt: Attempt, runtime: Runtime, stdin: int) -> process.Child:
    """Spawn the job (its stdout/stderr go to the attempt's logs); raises OSError.

    The job inherits the job's lock: the lock stays held while any process of the attempt
    lives, even when repx itself was killed (so a later run never starts a second
    attempt beside an orphan of this one; it ends them: :mod:`repx.run.orphans`).
    """
    if attempt.spec.pieces is not None:
        from repx.run import scatter  # noqa: PLC0415 (slow imports: only scatter-gather jobs)

        argv, env, cwd = scatter.command(attempt.spec, runtime, attempt.work, attempt.lock.fd)
    else:
        argv, env, cwd = runtime.command(attempt.spec, attempt.work)
    repx = os.path.join(attempt.work, REPX)
    out_fd = os.open(os.path.join(repx, STDOUT_LOG), _LOG_FLAGS, 0o644)
    try:
        err_fd = os.open(os.path.join(repx, STDERR_LOG), _LOG_FLAGS, 0o644)
        try:
            child = process.spawn(
                argv,
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=out_fd,
                stderr=err_fd,
                pass_fds=(attempt.lock.fd,),
            )
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)
    _checkpoint("spawned")  # the window between fork and registration
    attempt.child = child
    return child


def launch(
    store: Store,
    spec: JobSpec,
    lock: JobLock,
    runtime: Runtime,
    stdin: int,
    *,
    stop: Stop | None = None,
) -> Attempt | JobResult:
    """Prepare and start an attempt: the running Attempt, or the result when it did not run.

    With ``stop`` (a job run to completion), a stop requested before the spawn commits
    the attempt as interrupted without starting it, and one that came during the spawn
    is passed on to the child at once.
    """
    try:
        attempt = prepare(store, spec, lock, runtime)
    except OSError as exc:
        lock.release()
        why = f"cannot prepare its directory: {_describe(exc)}"
        return unrecorded(store, spec, runtime, JobStatus.ERROR, why)
    if stop is not None:
        stop.attempt = attempt
        _checkpoint("prepared")
        if stop.requested:
            attempt.interrupted = True
            return finish(store, attempt, None)
    try:
        start(attempt, runtime, stdin)
    except OSError as exc:
        why = f"cannot start {spec.executable}: {exc.strerror or exc}"
        return finish(store, attempt, None, error=why)
    if stop is not None and stop.requested and not attempt.signalled:
        # The stop came while we were starting it (its handler saw no child yet).
        stop_attempt(attempt, stop.signal)
    return attempt


def stop_attempt(attempt: Attempt, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop an attempt: it will be recorded as interrupted unless it succeeds.

    Its process group gets ``sig`` unless the job has already exited. An exited job
    that failed still counts as interrupted: the same stop (``scancel`` signals every
    process of the task) may well be what ended it.
    """
    attempt.interrupted = True
    child = attempt.child
    if child is not None and not process.has_exited(child):
        process.signal_group(child, sig)
        attempt.signalled = True


def finish(
    store: Store, attempt: Attempt, exit: process.Exit | None, *, error: str | None = None
) -> JobResult:
    """Decide the outcome, commit the attempt and release the lock.

    ``exit`` is None when the job did not start (``error`` says why; none: repx stopped
    it first). When the commit itself fails (e.g. a full disk) the attempt stays in
    ``.work`` (discarded by the next run), nothing half-written is visible, and the
    result says so without being recorded.
    """
    spec = attempt.spec
    w = os.fspath(attempt.work)
    if attempt.cleanup and exit is not None and exit.returncode < 0:
        # the engine's client was killed (SIGKILL): its container may still run
        process.run(attempt.cleanup, check=False)
    try:
        status, reason = _outcome(spec, w, exit, error, attempt.interrupted)
        result = make_result(
            spec.job,
            spec.lab_id,
            status=status,
            reason=reason,
            host=attempt.host,
            runtime=attempt.runtime,
            start=attempt.start_time,
            attempt=attempt.nonce,
            exit=exit,
            impure=attempt.impure,
        )
        _checkpoint("committing")
        try:
            if error is not None:
                log_path = os.path.join(w, REPX, STDERR_LOG)
                with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"repx: {error}\n")
            if spec.gathers or spec.run_metadata:
                _point_inputs_at(store, attempt)
            store.commit(spec.job, attempt.work, result)
        except OSError as exc:
            why = f"cannot commit: {_describe(exc)}"
            return make_result(
                spec.job,
                spec.lab_id,
                status=JobStatus.ERROR,
                reason=why,
                host=attempt.host,
                runtime=attempt.runtime,
            )
    finally:
        release(attempt)
    return result


def release(attempt: Attempt) -> None:
    """Release an ended attempt's lock, although its processes shared the lock's file.

    They inherited it (:func:`start`): the lock would stay held until the last of them
    -- killed by :func:`repx.process.reap` an instant ago -- is gone;
    :meth:`~repx.run.store.JobLock.release` unlocks the shared open file description first.
    """
    attempt.lock.release()


def _outcome(
    spec: JobSpec, work: str, exit: process.Exit | None, error: str | None, interrupted: bool
) -> tuple[JobStatus, str | None]:
    code = None if exit is None else exit.returncode
    if code is not None and code > 0 and spec.pieces is not None and not interrupted:
        # the scatter-gather orchestrator says which piece failed
        from repx.run import scatter  # noqa: PLC0415 (slow imports)

        return JobStatus.FAILED, scatter.failure_reason(work) or f"exit status {code}"
    missing = protocol.missing_outputs(work, spec.outputs) if code == 0 else ()
    return protocol.outcome(code, error=error, interrupted=interrupted, missing=missing)


def _point_inputs_at(store: Store, attempt: Attempt) -> None:
    """Rewrite inputs.json so that the files written into ``repx/`` (gathered inputs' lists,
    run descriptions) are named at the committed place."""
    spec = attempt.spec
    repx = os.path.join(attempt.work, REPX)
    final = os.fspath(store.repx_dir(spec.job))
    inputs = dict(spec.inputs)
    inputs.update({n: os.path.join(final, gather_file_name(n)) for n in spec.gathers})
    inputs.update(spec.store_inputs)
    inputs.update({n: os.path.join(final, run_metadata_file_name(n)) for n in spec.run_metadata})
    _write(os.path.join(repx, INPUTS_JSON), json.dumps(inputs, indent=1, sort_keys=True))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- one job to completion (cluster nodes, tests) ----------------------------------------


def wait_for_lock(store: Store, job: str, stop: Stop) -> JobLock | None:
    """Take the job's lock, waiting for another holder (None: a stop came first)."""
    while True:
        lock = store.try_lock(job)
        if lock is not None:
            return lock
        end_orphans(store, job)
        if stop.requested:
            return None
        stop.sleep(LOCK_RETRY)


class Stop:
    """SIGTERM/SIGINT handling for jobs run to completion in this process.

    The handler only records the request and signals the running attempt's group (a
    second request escalates to SIGKILL); it never raises, so a commit in progress always
    completes. Install it before the first lock is taken.
    """

    def __init__(self) -> None:
        self.requested = 0
        self.attempt: Attempt | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stop]:
        """Handle SIGTERM and SIGINT (main thread only) until the block ends."""
        try:
            if threading.current_thread() is not threading.main_thread():
                yield self
                return
            sigs = (signal.SIGTERM, signal.SIGINT)
            previous = {s: signal.signal(s, self._handle) for s in sigs}
            try:
                yield self
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            os.close(self._wake_r)
            os.close(self._wake_w)

    def request(self) -> None:
        """Stop: what the signal handler does (also callable directly)."""
        self.requested += 1
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        attempt = self.attempt
        if attempt is not None:
            stop_attempt(attempt, self.signal)

    @property
    def signal(self) -> signal.Signals:
        """What a running job gets: SIGTERM, SIGKILL from the second request on."""
        return signal.SIGKILL if self.requested > 1 else signal.SIGTERM

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a stop is requested."""
        select.select([self._wake_r], [], [], seconds)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request()


class JobTask(BaseModel):
    """The file a node wrapper runs: one job, its runtime and the store's base directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: JobSpec
    runtime: Runtime
    base: str


def run_job(store: Store, spec: JobSpec, runtime: Runtime, stop: Stop | None = None) -> JobResult:
    """Run one job to completion in this process, waiting for its lock if it is held.

    If the job is (or becomes, while we wait) committed as succeeded, its result is
    returned without running it again. A stop (SIGTERM/SIGINT, see :class:`Stop`) at any
    moment ends it recorded as interrupted (before it started, while it ran, after it
    exited), unless it had succeeded; once the commit has begun its outcome is settled
    and the commit completes. Pass ``stop`` when it must cover more than
    this job (a SLURM task's bundle); otherwise one is installed for the call.
    """
    if stop is None:
        with Stop().installed() as own:
            return run_job(store, spec, runtime, own)
    _checkpoint("waiting")
    found = committed(store, spec)
    if found is not None:
        return found
    lock = wait_for_lock(store, spec.job, stop)
    if lock is None:
        why = f"{INTERRUPTED} while another process held the job"
        return unrecorded(store, spec, runtime, JobStatus.INTERRUPTED, why)
    found = committed(store, spec)
    if found is not None:
        lock.release()
        return found
    _checkpoint("locked")
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        started = launch(store, spec, lock, runtime, devnull, stop=stop)
        if isinstance(started, JobResult):
            return started
        child = started.child
        assert child is not None
        _checkpoint("running")
        while not process.wait_any([child], None):
            pass
        _checkpoint("exited")
        return finish(store, started, process.reap(child))
    finally:
        stop.attempt = None
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m repx.run.job TASK.json``: run one job; exit 0 when it succeeded."""
    with Stop().installed() as stop:
        args = list(sys.argv[1:] if argv is None else argv)
        if len(args) != 1:
            sys.stderr.write("usage: python -m repx.run.job TASK.json\n")
            return 2
        try:
            task = JobTask.model_validate_json(Path(args[0]).read_bytes())
        except (OSError, ValidationError) as exc:
            sys.stderr.write(f"repx job: cannot read {args[0]}: {exc}\n")
            return 2
        try:
            store = Store.open(Path(task.base))
        except StoreError as exc:
            sys.stderr.write(f"repx job: {exc.message}\n")
            return 2
        try:
            result = run_job(store, task.spec, task.runtime, stop)
        finally:
            store.close()
    sys.stdout.write(result.model_dump_json() + "\n")
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
