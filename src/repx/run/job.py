"""The lifecycle of one job attempt: prepare the work dir, spawn, wait, commit.

The same functions serve the local executor (in-process, many jobs at once) and a cluster
node (``python -m repx.run.job TASK.json`` runs one job to completion under the same
locks, markers, logs and atomic commit)::

    lock = store.try_lock(spec.job)           # or store.lock() to wait
    attempt = prepare(store, spec, lock, runtime)
    start(attempt, runtime, devnull)          # attempt.child is running
    ...                                       # proc.wait_any / proc.reap
    result = finish(store, attempt, exit)     # commit, release the lock
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH103, PTH110, PTH118, PTH120, PTH123

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from repx.run import proc
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec
from repx.run.store import OUT, REPX, JobLock, Store
from repx.run.store_models import JobResult, JobStatus

INPUTS_JSON: Final = "inputs.json"
PARAMETERS_JSON: Final = "parameters.json"
STDOUT_LOG: Final = "stdout.log"
STDERR_LOG: Final = "stderr.log"
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
    child: proc.Child | None = None
    interrupted: bool = False
    impure: tuple[str, ...] = ()


def gather_file_name(name: str) -> str:
    """File name of a gathered input's list, inside the attempt's ``repx/``."""
    return f"gather-{_UNSAFE.sub('_', name)}.json"


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
        _write(os.path.join(repx, INPUTS_JSON), json.dumps(inputs, indent=1, sort_keys=True))
    except BaseException:
        store.discard_attempt(work)
        raise
    return Attempt(
        spec, lock, work, nonce, runtime.kind.value, store.host, start_time, impure=runtime.impure
    )


def start(attempt: Attempt, runtime: Runtime, stdin: int) -> proc.Child:
    """Spawn the job (its stdout/stderr go to the attempt's logs); raises OSError."""
    argv, env, cwd = runtime.command(attempt.spec, attempt.work)
    repx = os.path.join(attempt.work, REPX)
    out_fd = os.open(os.path.join(repx, STDOUT_LOG), _LOG_FLAGS, 0o644)
    try:
        err_fd = os.open(os.path.join(repx, STDERR_LOG), _LOG_FLAGS, 0o644)
        try:
            attempt.child = proc.spawn(
                argv,
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=out_fd,
                stderr=err_fd,
            )
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)
    return attempt.child


def finish(
    store: Store, attempt: Attempt, exit: proc.Exit | None, *, error: str | None = None
) -> JobResult:
    """Decide the outcome, commit the attempt and release the lock.

    ``exit`` is None when the job could not be started (``error`` says why).
    """
    spec = attempt.spec
    w = os.fspath(attempt.work)
    try:
        status, reason = _outcome(spec, w, exit, error, attempt.interrupted)
        if error is not None:
            log_path = os.path.join(w, REPX, STDERR_LOG)
            with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as log:
                log.write(f"repx: {error}\n")
        if spec.gathers:
            _point_inputs_at(store, attempt)
        result = JobResult(
            job=spec.job,
            status=status,
            exit_code=exit.returncode if exit is not None else None,
            reason=reason,
            start=attempt.start_time,
            end=time.time(),
            host=attempt.host,
            runtime=attempt.runtime,
            lab_id=spec.lab_id,
            attempt=attempt.nonce,
            cpu_seconds=round(exit.cpu_seconds, 6) if exit is not None else None,
            max_rss_kib=exit.max_rss_kib if exit is not None else None,
            impure=attempt.impure,
        )
        store.commit(spec.job, attempt.work, result)
    finally:
        attempt.lock.release()
    return result


def _outcome(
    spec: JobSpec, work: str, exit: proc.Exit | None, error: str | None, interrupted: bool
) -> tuple[JobStatus, str | None]:
    if exit is None:
        return JobStatus.ERROR, error or "not started"
    code = exit.returncode
    # A job that had already ended successfully when the stop came keeps its result.
    if interrupted and code != 0:
        return JobStatus.INTERRUPTED, "interrupted"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return JobStatus.FAILED, f"killed by {name}"
    if code != 0:
        return JobStatus.FAILED, f"exit status {code}"
    out = os.path.join(work, OUT)
    missing = [rel for rel in spec.outputs if not os.path.exists(os.path.join(out, rel))]
    if missing:
        return JobStatus.FAILED, f"declared output(s) missing: {', '.join(missing)}"
    return JobStatus.SUCCEEDED, None


def _point_inputs_at(store: Store, attempt: Attempt) -> None:
    """Rewrite inputs.json so gathered inputs name their lists at the committed place."""
    repx = os.path.join(attempt.work, REPX)
    final = os.fspath(store.repx_dir(attempt.spec.job))
    inputs = dict(attempt.spec.inputs)
    inputs.update({n: os.path.join(final, gather_file_name(n)) for n in attempt.spec.gathers})
    _write(os.path.join(repx, INPUTS_JSON), json.dumps(inputs, indent=1, sort_keys=True))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


# -- one job to completion (cluster nodes, tests) ----------------------------------------


class JobTask(BaseModel):
    """The file a node wrapper runs: one job, its runtime and the store's base directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: JobSpec
    runtime: Runtime
    base: str


def run_job(store: Store, spec: JobSpec, runtime: Runtime) -> JobResult:
    """Run one job to completion in this process, waiting for its lock if it is held.

    If the job is (or becomes, while we wait) committed as succeeded, its result is
    returned without running it again. SIGTERM/SIGINT stop the job and record it as
    interrupted.
    """
    if store.committed_success(spec.job):
        found = store.read_result(spec.job)
        if found is not None:
            return found
    lock = store.lock(spec.job)
    if store.committed_success(spec.job):
        found = store.read_result(spec.job)
        if found is not None:
            lock.release()
            return found
    attempt = prepare(store, spec, lock, runtime)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def stop(signum: int, frame: FrameType | None) -> None:
        attempt.interrupted = True
        if attempt.child is not None:
            proc.signal_group(attempt.child, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            child = start(attempt, runtime, devnull)
        except OSError as exc:
            return finish(
                store, attempt, None, error=f"cannot start {spec.executable}: {exc.strerror}"
            )
        while not proc.wait_any([child], None):
            pass
        return finish(store, attempt, proc.reap(child))
    finally:
        os.close(devnull)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m repx.run.job TASK.json``: run one job; exit 0 when it succeeded."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m repx.run.job TASK.json\n")
        return 2
    try:
        task = JobTask.model_validate_json(Path(args[0]).read_bytes())
    except (OSError, ValidationError) as exc:
        sys.stderr.write(f"repx job: cannot read {args[0]}: {exc}\n")
        return 2
    store = Store.open(Path(task.base))
    try:
        result = run_job(store, task.spec, task.runtime)
    finally:
        store.close()
    sys.stdout.write(result.model_dump_json() + "\n")
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
