"""Record job attempts in an output store through repx.run.store, for inspection tests.

    from storefake import record_attempt, hold_attempt

    record_attempt(base, lab_id, job, outputs={"data.csv": "a,b\n1,2\n"})   # succeeded
    record_attempt(base, lab_id, job, status="failed", exit_code=3)
    with hold_attempt(base, job):                                          # running
        ...

Uses the store's own commit protocol (lock, attempt directory, commit), so the layout the
inspection commands read is exactly what ``repx run`` writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from repx.run.store import Store
from repx.run.store_models import JobResult, JobStatus


def record_attempt(
    base: Path,
    lab_id: str,
    job: str,
    *,
    status: str = "succeeded",
    outputs: Mapping[str, str] | None = None,
    exit_code: int | None = 0,
    reason: str | None = None,
    stdout: str = "",
    stderr: str = "",
    start: float | None = None,
    duration: float = 1.5,
) -> None:
    """Commit one finished attempt of ``job`` to the store at ``base``."""
    store = Store.open(base)
    lock = store.lock(job)
    try:
        work, nonce = store.new_attempt(job)
        for rel, text in (outputs or {}).items():
            path = work / "out" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (work / "repx" / "stdout.log").write_text(stdout)
        (work / "repx" / "stderr.log").write_text(stderr)
        begin = time.time() - 60 if start is None else start
        result = JobResult(
            job=job,
            status=JobStatus(status),
            exit_code=exit_code if status != "succeeded" else 0,
            reason=reason,
            start=begin,
            end=begin + duration,
            host="testhost",
            runtime="native",
            lab_id=lab_id,
            attempt=nonce,
        )
        store.commit(job, work, result)
    finally:
        lock.release()
        store.close()


@contextmanager
def hold_attempt(base: Path, job: str) -> Iterator[Path]:
    """Keep an attempt of ``job`` in progress (its lock held) for the ``with`` block."""
    store = Store.open(base)
    lock = store.lock(job)
    try:
        work, _nonce = store.new_attempt(job)
        yield work
    finally:
        lock.release()
        store.discard_attempt(work)
        store.close()
