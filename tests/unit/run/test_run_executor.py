"""LocalExecutor: start, reap, wait for a job held elsewhere and adopt its result, close."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from labfactory import RunSpec, StageSpec, write_lab
from repx import process
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run.executor import Finished, LocalExecutor, Started, Waiting
from repx.run.runtime import Runtime
from repx.run.spec import make_spec
from repx.run.store import Store
from repx.run.store_models import JobResult, JobStatus

HOLD = """
import fcntl, os, struct, sys
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = open(sys.argv[1], "a")
# the store's lock: an OFD write lock on the whole file (no owner line written)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
print("held", flush=True)
sys.stdin.read()
"""


def setup(tmp_path, script=None):
    runs = (RunSpec("one", stages=(StageSpec("s", script=script),)),)
    factory = write_lab(tmp_path / "lab", runs)
    lab = open_lab(factory.root)
    store = Store.open(tmp_path / "base")
    runtime = Runtime(
        kind=RuntimeKind.NATIVE,
        path=str(lab.root / lab.meta.host_tools / "bin"),
        outputs=str(store.outputs),
    )
    job = factory.job_ids[0]
    return store, LocalExecutor(store, runtime), make_spec(lab, job, store.outputs)


def drain(executor, timeout=30.0):
    events, deadline = [], time.monotonic() + timeout
    while executor.active and time.monotonic() < deadline:
        events += executor.poll(1.0)
    return events + executor.poll(0)


def test_runs_and_reports(tmp_path):
    store, executor, spec = setup(tmp_path)
    executor.submit(spec)
    events = drain(executor)
    assert isinstance(events[0], Started)
    [finished] = [e for e in events if isinstance(e, Finished)]
    assert finished.result.succeeded and not finished.adopted
    assert store.read_index().succeeded(spec.job)
    executor.close()


def test_waits_for_holder_then_adopts_its_result(tmp_path):
    store, executor, spec = setup(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store.locks / f"{spec.job}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    executor.submit(spec)
    events = executor.poll(0)
    assert [type(e) for e in events] == [Waiting]
    assert events[0].holder == "unknown"  # not a repx process: it wrote no owner line
    # the other run commits a failure, then releases its lock
    work, nonce = store.new_attempt(spec.job)
    other = JobResult(
        job=spec.job,
        status=JobStatus.FAILED,
        exit_code=5,
        start=0,
        end=1,
        host="other",
        runtime="native",
        lab_id="l",
        attempt=nonce,
    )
    store.commit(spec.job, work, other)
    holder.stdin.close()
    holder.wait()
    events = drain(executor)
    [finished] = [e for e in events if isinstance(e, Finished)]
    assert finished.adopted and finished.result.exit_code == 5
    assert not [e for e in events if isinstance(e, Started)]  # not executed by us
    executor.close()


def test_close_kills_running_jobs(tmp_path):
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    # shell builtins only (the factory's host tools have no sleep): blocks until killed
    store, executor, spec = setup(tmp_path, script=f': > "$out/running"; read -r _ < {fifo}')
    executor.submit(spec)
    assert isinstance(executor.poll(0)[0], Started)
    # Started means the wrapper was spawned; wait until the job itself runs (its attempt
    # directory exists then), or close() may end the wrapper before it made one.
    deadline = time.monotonic() + 60
    while not list((tmp_path / "base" / ".work").glob("*/out/running")):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)
    executor.close()  # kills it (else this test would never end)
    assert executor.active == 0
    assert not store.is_locked(spec.job)
    assert list(store.attempts_in_progress()) == [spec.job]  # stale: the next run discards it


ORPHAN = """
import os, subprocess, sys
from pathlib import Path
from repx.run.store import Store
lock = Store(Path(sys.argv[1])).try_lock(sys.argv[2])
orphan = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    pass_fds=(lock.fd,), start_new_session=True, env={"REPX_JOB_ID": sys.argv[2]},
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
print(orphan.pid, flush=True)
os._exit(0)  # die without cleanup, as under kill -9: the orphan keeps the lock
"""


def test_ends_the_orphans_of_a_dead_run_then_runs_the_job(tmp_path):
    store, executor, spec = setup(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", ORPHAN, str(store.root), spec.job],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = int(dead.stdout)
    try:
        assert store.is_locked(spec.job)  # held by the orphan, its repx is gone
        executor.submit(spec)
        events = drain(executor)
        assert not process.is_alive(orphan)
        [finished] = [e for e in events if isinstance(e, Finished)]
        assert finished.result.succeeded and not finished.adopted
        assert isinstance(events[0], Waiting)  # it waited for the orphan to be gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)
        executor.close()


def test_a_live_holder_is_never_killed(tmp_path):
    """The holder named in the lock file is alive: wait for it, end nothing."""
    store, executor, spec = setup(tmp_path)
    lock = store.try_lock(spec.job)  # this process: alive
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        pass_fds=(lock.fd,),
        start_new_session=True,
        env={"REPX_JOB_ID": spec.job},
    )
    try:
        executor.submit(spec)
        assert [type(e) for e in executor.poll(0.3)] == [Waiting]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        lock.release()
    events = drain(executor)
    assert [e.result.succeeded for e in events if isinstance(e, Finished)] == [True]
    executor.close()
