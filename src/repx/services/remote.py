"""SSH targets: sync a lab to a remote host, run it there, read its state, fetch outputs.

The remote host needs ssh, ``/bin/sh`` and a writable ``base_path`` — neither repx nor Nix:
what runs there comes with the lab (its host-tools' bash, busybox and bwrap, and the remote
runner ``src/repx/remote/runner.sh``). Layout under ``base_path`` (docs/remote.md)::

    nix/store/<name>/          store paths of the labs' closures (hosts without the lab's
                               store paths in /nix/store), each copied once, shared by labs
    labs/<lab id>/             a lab's own files (store/, host-tools/ stay links into
                               /nix/store, which is nix/store/ inside the sandbox)
    base/                      the output store, in the local format (docs/running.md)
    submissions/<id>/          one ``repx run``: its plan, the runner's pid, log, progress
    .incoming/                 copies in progress, renamed into place when complete

Every command opens one ssh master connection (:class:`repx.ssh.Connection`) and makes all
its calls and rsync transfers over it.
"""

# Paths of the target are strings for another host, not this machine's.
# ruff: noqa: PTH115, PTH118

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from repx import process, rsync
from repx.config import RuntimeKind, SchedulerKind, Target, resolve_base
from repx.errors import RepxError, UsageError
from repx.inspect.models import OutputFile, OutputListing
from repx.inspect.status import JobState, propagate
from repx.lab import closure as lab_closure
from repx.lab.loader import LoadedLab, open_lab
from repx.lab.validate import validate_lab
from repx.remote import RUNNER
from repx.run.events import FailedJob, JobBlocked, JobFinished, LabSynced, RunPlanned, RunSummary
from repx.run.graph import JobGraph, build_graph
from repx.run.reporter import Reporter
from repx.run.runtime import Runtime
from repx.run.selection import lab_order, select
from repx.run.spec import effective_params
from repx.run.store import Store
from repx.run.store_models import STORE_FORMAT, JobResult, JobStatus
from repx.services import remote_delta
from repx.services.location import Location, named_target
from repx.services.remote_plan import RUNNER_NAME, remote_runtime, write_plan
from repx.services.run import RunOptions
from repx.services.status import JobStatusEntry, StageStatus, StatusReport
from repx.ssh import Connection, RemoteError, last_line

#: Refuse to sync when the remote file system has less free space than this beyond the
#: estimate of what is sent.
MIN_FREE_KIB: Final = 4 * 1024

# One fixed script (never composed from values): the values are its arguments.
_PROBE: Final = r"""
r=$1; shift
mkdir -p "$r/base/outputs" "$r/labs" "$r/nix/store" "$r/.incoming" "$r/submissions" || exit 3
[ -f "$r/base/repx-store.json" ] || printf '{"format":"%s"}\n' "$1" >"$r/base/repx-store.json"
shift
echo "free $(df -Pk "$r" | awk 'NR==2 {print $4}')"
for p in "$r"/nix/store/*; do [ -e "$p" ] && echo "have ${p##*/}"; done
for p in $(ls -t "$r/labs"); do echo "lab $p"; done
for p in "$@"; do [ -e "$p" ] && echo "nix $p"; done
[ -f "$r/runner.id" ] && echo "runner $(cat "$r/runner.id")"
[ -f "$r/tools" ] && echo "tools $(cat "$r/tools")"
command -v rsync >/dev/null 2>&1 && echo rsync
exit 0
"""
_PUBLISH: Final = r"""
set -e
from=$1; to=$2; shift 2
for name in "$@"; do
  if [ -e "$to/$name" ]; then rm -rf "$from/$name"; else mv "$from/$name" "$to/$name"; fi
done
"""
_DISCARD: Final = 'rm -rf "$@"'
_START: Final = 'mkdir -p "${2%/*}" && mv "$1" "$2" && exec "$3" "$2/$4" start "$2"'


class StoppedFollowing(RepxError):
    """Ctrl-C while following a run on an SSH target: the run goes on there."""

    exit_code = 130


@dataclass(frozen=True)
class Remote:
    """An SSH target (``[targets.NAME] address = …``)."""

    name: str
    address: str
    base_path: str
    scheduler: SchedulerKind = SchedulerKind.LOCAL
    runtime: RuntimeKind = RuntimeKind.BWRAP
    ssh_options: tuple[str, ...] = ()
    concurrency: int | None = None
    #: scheduler "slurm": the options of the batch job that runs the plan there
    sbatch: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        """The remote output store."""
        return f"{self.base_path}/base"

    def connect(self) -> Connection:
        """A connection (opened on first use)."""
        return Connection(self.name, self.address, self.ssh_options)


def remote_target(where: Location) -> Remote | None:
    """The SSH target a command is asked to use (None: this machine or its SLURM)."""
    name, target = named_target(where)
    return remote_of(name, target)


def remote_of(name: str | None, target: Target) -> Remote | None:
    """The SSH target ``target`` describes (None: a local or SLURM target on this machine)."""
    if target.address is None:
        return None
    label = f"targets.{name}" if name else "the default target"
    base = os.fspath(target.base) if target.base is not None else ""
    if not base.startswith("/"):
        raise UsageError(
            f"config.toml: {label}: an SSH target needs base_path (or base): an absolute"
            " directory on that host"
        )
    sbatch: tuple[str, ...] = ()
    if target.scheduler is SchedulerKind.SLURM:
        # one batch job runs the plan on one node (docs/remote.md, "SLURM behind SSH")
        partition = (f"--partition={target.slurm.partition}",) if target.slurm.partition else ()
        sbatch = (*partition, *target.slurm.sbatch_options)
    return Remote(
        name=name or "default",
        address=target.address,
        base_path=os.path.normpath(base),
        scheduler=target.scheduler,
        runtime=target.runtime or RuntimeKind.BWRAP,
        ssh_options=target.ssh_options,
        concurrency=target.concurrency,
        sbatch=sbatch,
    )


# -- sync -----------------------------------------------------------------------------


@dataclass
class Synced:
    """Where the lab is on the target and what the sync cost."""

    lab_dir: str
    store: str | None
    tools: str
    sent: rsync.Transfer = field(default_factory=rsync.Transfer)
    seconds: float = 0.0


def _closure_paths(lab: LoadedLab) -> list[str]:
    paths = dict.fromkeys(lab.meta.store_paths)
    if lab.meta.closure is not None:
        closure = lab_closure.load(lab.root, lab.meta.closure)
        paths.update(dict.fromkeys(e.store_path for e in closure.entries))
    return list(paths)


def _host_tools_store_path(lab: LoadedLab) -> str | None:
    link = lab.root / lab.meta.host_tools
    return os.readlink(link) if link.is_symlink() else None


def sync_lab(conn: Connection, remote: Remote, lab: LoadedLab) -> Synced:
    """Copy what the target lacks: store paths (by name, each once) and the lab's files
    (hard-linked from the last lab there where unchanged); publish each by rename."""
    started = time.monotonic()
    root = remote.base_path
    closure = _closure_paths(lab)
    probe = conn.run(["sh", "-c", _PROBE, "sh", root, STORE_FORMAT, *closure])
    free_kib, have, labs, on_host = 0, set(), [], set()
    found: dict[str, str] = {}
    for line in probe.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "free" and value.isdigit():
            free_kib = int(value)
        elif key == "have":
            have.add(value)
        elif key == "lab":
            labs.append(value)
        elif key == "nix":
            on_host.add(value)
        else:
            found[key] = value
    if "rsync" not in found:
        raise RemoteError(
            f"{conn.label}: rsync is not installed on that host (repx copies the lab with it)"
        )
    lab_id = lab.meta.lab_id
    lab_dir = f"{root}/labs/{lab_id}"
    host_has_nix = bool(closure) and on_host.issuperset(closure)
    missing = [] if host_has_nix else [p for p in closure if p.rsplit("/", 1)[-1] not in have]
    need_kib = sum(_du_kib(Path(p)) for p in missing)
    if lab_id not in labs:
        need_kib += _du_kib(lab.root, follow=False)
    if free_kib and need_kib + MIN_FREE_KIB > free_kib:
        raise RemoteError(
            f"{conn.label}: disk full: {root} has {free_kib // 1024} MiB free, the lab needs"
            f" {need_kib // 1024 + 1} MiB; free space there or choose another base_path"
        )
    sent = rsync.Transfer()
    incoming = f"{root}/.incoming/{secrets.token_hex(6)}"
    if not missing and lab_id in labs:
        incoming = ""  # nothing to copy: no copy to clean up
    try:
        if missing:
            # store paths are immutable and named by their hash: present means complete
            sent += rsync.copy(
                conn, missing, f":{incoming}/store/", options=["--mkpath"], what="store paths"
            )
            names = [p.rsplit("/", 1)[-1] for p in missing]
            conn.run(["sh", "-c", _PUBLISH, "sh", f"{incoming}/store", f"{root}/nix/store", *names])
        if lab_id not in labs:
            sent += _copy_lab(conn, remote, lab, labs, f"{incoming}/lab/{lab_id}")
            conn.run(["sh", "-c", _PUBLISH, "sh", f"{incoming}/lab", f"{root}/labs", lab_id])
            remote_delta.remember(_target_key(remote), remote_delta.listing_of(lab))
    finally:
        if incoming:
            conn.run(["sh", "-c", _DISCARD, "sh", incoming], check=False)
    tools = _tools_dir(lab, lab_dir, root, host_has_nix)
    runner_id = _runner_id()
    if found.get("runner") != runner_id or found.get("tools") != tools:
        # the runner and the tools it starts with, for every later command (status, log…);
        # rsync replaces each file by rename
        with tempfile.TemporaryDirectory(prefix="repx-runner-") as tmp:
            shutil.copyfile(RUNNER, Path(tmp) / "runner.sh")
            (Path(tmp) / "runner.id").write_text(runner_id + "\n")
            (Path(tmp) / "tools").write_text(tools + "\n")
            files = [f"{tmp}/{name}" for name in ("runner.sh", "runner.id", "tools")]
            sent += rsync.copy(conn, files, f":{root}/", options=["--checksum"], what="the runner")
    store = None if host_has_nix else f"{root}/nix/store"
    if lab.meta.closure is None:
        store = f"{lab_dir}/{lab.meta.store}"  # a lab holding copies: its own store/
    return Synced(lab_dir, store, tools, sent, time.monotonic() - started)


#: Labs there whose files a new revision's copy may hard-link (rsync takes up to 20).
_LINK_DESTS: Final = 10
#: A hard-linked copy of lab $1 as $2, less the entries named on stdin (one per line).
_COPY_LAB: Final = r"""
set -e
mkdir -p "${2%/*}"
rsync -a --link-dest="$1/" "$1/" "$2/"
cd "$2"
while IFS= read -r p; do rm -rf "./$p"; done
"""


def _target_key(remote: Remote) -> str:
    return f"{remote.address}:{remote.base_path}"


def _copy_lab(
    conn: Connection, remote: Remote, lab: LoadedLab, labs: list[str], dest: str
) -> rsync.Transfer:
    """Copy the lab's files to ``dest`` there. With the listing of a lab already there (kept
    here when it was synced): a hard-linked copy of it, then only the entries that differ
    (remote_delta); otherwise everything, hard-linking files identical to those of the labs
    there. --checksum: a lab's files all have mtime 1, a same-size change must be seen."""
    root = remote.base_path
    old = remote_delta.recall(_target_key(remote), labs)
    change = remote_delta.delta(old, remote_delta.listing_of(lab)) if old is not None else None
    options = ["--mkpath", "--checksum", "--chmod=u+w", "-z"]
    if old is None or change is None:
        links = [f"--link-dest={root}/labs/{other}" for other in labs[:_LINK_DESTS]]
        return rsync.copy(
            conn, [f"{lab.root}/"], f":{dest}/", options=[*options, *links], what="the lab"
        )
    conn.run(
        ["sh", "-c", _COPY_LAB, "sh", f"{root}/labs/{old.lab_id}", dest],
        input_text="".join(p + "\n" for p in change.remove),
    )
    with tempfile.NamedTemporaryFile("w", prefix="repx-files-", suffix=".txt") as listed:
        listed.write("".join(p + "\n" for p in change.send))
        listed.flush()
        return rsync.copy(
            conn,
            [f"{lab.root}/"],
            f":{dest}/",
            options=[*options, f"--files-from={listed.name}"],
            what="the lab",
        )


@functools.cache
def _runner_id() -> str:
    """The version of the runner script (its content's hash)."""
    return hashlib.sha256(RUNNER.read_bytes()).hexdigest()[:16]


def _tools_dir(lab: LoadedLab, lab_dir: str, root: str, host_has_nix: bool) -> str:
    """The host-tools bin directory on the target, usable outside the sandbox."""
    link = _host_tools_store_path(lab)
    if link is None:
        return f"{lab_dir}/{lab.meta.host_tools}/bin"
    return f"{link}/bin" if host_has_nix else f"{root}/nix/store/{link.rsplit('/', 1)[-1]}/bin"


def _du_kib(path: Path, *, follow: bool = True) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=follow):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total // 1024 + 1


# -- run ------------------------------------------------------------------------------


def run_remote(remote: Remote, options: RunOptions, reporter: Reporter) -> RunSummary:
    """Sync the lab, start what the target has not done yet, return (or follow it)."""
    started = time.monotonic()
    try:
        if options.mount_host_paths or options.mount_paths:
            raise UsageError("--mount-host-paths/--mount-path apply to local targets only")
        lab = open_lab(options.where.lab)
        if options.verify:
            validate_lab(lab)
        selection = select(lab, options.selectors)
        graph = build_graph(lab, selection)
        with remote.connect() as conn:
            synced = sync_lab(conn, remote, lab)
            reporter.handle(
                LabSynced(
                    target=remote.name,
                    bytes_sent=synced.sent.sent,
                    files=synced.sent.files,
                    seconds=round(synced.seconds, 3),
                )
            )
            done = _snapshot(conn, remote, lab).done()
            # --force: the selected jobs run again, not what they need (as locally)
            forced = frozenset(selection.targets) if options.force else frozenset()
            plan = graph.prune(lambda job: job in done and job not in forced, selection.targets)
            to_run = plan.jobs
            cached = len(selection.jobs) - len(to_run)
            common: dict[str, Any] = {
                "lab": synced.lab_dir,
                "base": f"{remote.address}:{remote.base}",
                "outputs": f"{remote.base}/outputs",
                "selected": len(selection.jobs),
                "cached": cached,
                "ssh_target": remote.name,
            }
            if options.dry_run or not to_run:
                summary = RunSummary(
                    **common,
                    succeeded=0,
                    dry_run=options.dry_run,
                    would_run=tuple(to_run) if options.dry_run else (),
                    seconds=round(time.monotonic() - started, 3),
                )
                reporter.handle(summary)
                return summary
            runtime = remote_runtime(
                lab,
                options.runtime or remote.runtime,
                lab_dir=synced.lab_dir,
                outputs=common["outputs"],
                store=synced.store,
                tools=synced.tools,
            )
            max_jobs = options.jobs or remote.concurrency or _cpu_count(conn, synced)
            submission = _submit(
                conn, remote, lab, plan, runtime, synced, max_jobs, options, forced
            )
            reporter.handle(
                RunPlanned(
                    lab=synced.lab_dir,
                    lab_id=lab.meta.lab_id,
                    base=common["base"],
                    runtime=runtime.kind.value,
                    concurrency=max_jobs,
                    selected=len(selection.jobs),
                    cached=cached,
                    to_run=len(to_run),
                    ssh_target=remote.name,
                )
            )
            if not options.wait:
                summary = RunSummary(
                    **common,
                    succeeded=0,
                    submitted_only=True,
                    submission=submission,
                    seconds=round(time.monotonic() - started, 3),
                )
            else:
                kept_aside = forced & done  # a failed rerun is kept in failed-rerun/
                summary = _follow(
                    conn, remote, lab, submission, reporter, common, started, kept_aside
                )
            reporter.handle(summary)
            return summary
    finally:
        reporter.close()


def _cpu_count(conn: Connection, synced: Synced) -> int:
    answer = conn.run([f"{synced.tools}/nproc"], check=False).stdout.strip()
    return int(answer) if answer.isdigit() else 1


def _submit(  # noqa: PLR0917
    conn: Connection,
    remote: Remote,
    lab: LoadedLab,
    plan: JobGraph,
    runtime: Runtime,
    synced: Synced,
    max_jobs: int,
    options: RunOptions,
    forced: frozenset[str],
) -> str:
    """Copy the submission's plan there (published by rename) and start the runner."""
    submission = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    root = remote.base_path
    with tempfile.TemporaryDirectory(prefix="repx-submit-") as tmp:
        local = Path(tmp) / submission
        write_plan(
            local,
            lab,
            plan,
            runtime,
            lab_dir=synced.lab_dir,
            base=remote.base,
            max_jobs=max_jobs,
            continue_on_failure=options.continue_on_failure,
            forced=forced,
        )
        if remote.scheduler is SchedulerKind.SLURM:
            sbatch = (f"--cpus-per-task={max_jobs}", *remote.sbatch)
            (local / "sbatch").write_bytes(b"".join(o.encode() + b"\0" for o in sbatch))
        incoming = f"{root}/.incoming/{submission}"
        sub = f"{root}/submissions/{submission}"
        try:
            rsync.copy(
                conn, [f"{local}/"], f":{incoming}/", options=["--mkpath", "-z"], what="the plan"
            )
            # published by rename, then started: one call
            conn.run(["sh", "-c", _START, "sh", incoming, sub, f"{synced.tools}/bash", RUNNER_NAME])
        except BaseException:
            conn.run(["sh", "-c", _DISCARD, "sh", incoming], check=False)
            raise
    return submission


#: Lines of a failed job's stderr shown in the summary (as locally).
_STDERR_TAIL: Final = 10
#: Failed jobs whose stderr is fetched for the summary (one ssh call each).
_TAILS_SHOWN: Final = 5


def _follow(  # noqa: PLR0917
    conn: Connection,
    remote: Remote,
    lab: LoadedLab,
    submission: str,
    reporter: Reporter,
    common: dict[str, Any],
    started: float,
    kept_aside: frozenset[str] = frozenset(),
) -> RunSummary:
    """Follow the runner's progress log until it ends; summarise the run."""
    sub = f"{remote.base_path}/submissions/{submission}"
    try:
        final, unsuccessful = _follow_progress(conn, lab, sub, reporter, remote)
    except KeyboardInterrupt:
        raise StoppedFollowing(
            f"stopped following; the run goes on on target '{remote.name}' (submission"
            f" {submission}): repx status --target {remote.name}, repx cancel --target"
            f" {remote.name}"
        ) from None
    failed: list[FailedJob] = []
    for job, status, code, reason in unsuccessful:
        attempt = f"{job}/failed-rerun" if job in kept_aside else job
        log = f"{remote.base}/outputs/{attempt}/repx/stderr.log"
        tail: tuple[str, ...] = ()
        if len(failed) < _TAILS_SHOWN:
            got = conn.run(["tail", "-n", str(_STDERR_TAIL), log], check=False)
            tail = tuple(got.stdout.splitlines())
        failed.append(
            FailedJob(
                job=job,
                stage=lab.jobs[job].stage,
                params=effective_params(lab, job),
                status=status,
                exit_code=code,
                reason=reason,
                log=f"{remote.address}:{log}",
                stderr_tail=tail,
            )
        )
    succeeded, _failed, blocked, not_started, stopped = (int(x) for x in final[1:6])
    return RunSummary(
        **common,
        succeeded=succeeded,
        failed=tuple(failed),
        blocked=blocked,
        not_started=not_started,
        interrupted=bool(stopped),
        seconds=round(time.monotonic() - started, 3),
    )


def _follow_progress(
    conn: Connection, lab: LoadedLab, sub: str, reporter: Reporter, remote: Remote
) -> tuple[list[str], list[tuple[str, JobStatus, int | None, str | None]]]:
    """Report the runner's progress lines as they come (one streaming call) until its
    summary line (returned, with the jobs that did not succeed)."""
    final: list[str] = []
    failure: list[str] = []
    unsuccessful: list[tuple[str, JobStatus, int | None, str | None]] = []

    def line(text: str) -> None:
        fields = text.split("\t")
        if fields[0] == "summary":
            final[:] = fields
        elif fields[0] == "runner-failed":
            failure[:] = [*fields, ""]
        elif fields[0] in {"finished", "blocked"} and len(fields) >= 3:
            ended = _report_line(lab, fields, reporter)
            if ended is not None and ended[1] is not JobStatus.SUCCEEDED:
                unsuccessful.append(ended)

    argv = conn.stream_argv(runner_argv(remote, "follow", sub))
    result = process.stream(argv, on_stderr_line=line, check=False)
    if failure:
        raise RemoteError(
            f"{conn.label}: the remote runner failed ({failure[1]}); see {sub}/runner.log there"
        )
    if not final:
        raise RemoteError(
            f"{conn.label}: following the run failed ({last_line(result.stderr)}); it may go"
            f" on there: repx status --target {remote.name}"
        )
    return final, unsuccessful


def _report_line(
    lab: LoadedLab, fields: list[str], reporter: Reporter
) -> tuple[str, JobStatus, int | None, str | None] | None:
    """One line of the runner's progress log as the local run's event; a finished job's
    (id, status, exit status, reason)."""
    kind, job = fields[0], fields[1]
    if job not in lab.jobs:
        return None
    stage = lab.jobs[job].stage
    params = effective_params(lab, job)
    if kind == "blocked":
        reporter.handle(JobBlocked(job=job, stage=stage, params=params, cause=fields[2]))
        return None
    # finished <job> <status> <exit status> <seconds> <reason>
    padded = [*fields, "", "", "", ""]
    status = JobStatus(padded[2])
    code = int(padded[3]) if padded[3].lstrip("-").isdigit() else None
    try:
        seconds = float(padded[4])
    except ValueError:
        seconds = 0.0
    reason = padded[5] or None
    reporter.handle(
        JobFinished(
            job=job,
            stage=stage,
            params=params,
            status=status,
            exit_code=code,
            reason=reason,
            seconds=seconds,
        )
    )
    return job, status, code, reason


# -- the remote state -----------------------------------------------------------------


@dataclass
class Snapshot:
    """What the target's output store says of the lab's jobs (one ssh call)."""

    own: dict[str, JobState]
    reasons: dict[str, str]
    records: dict[str, JobResult]

    def done(self) -> set[str]:
        """Jobs with an intact success there."""
        return {j for j, s in self.own.items() if s is JobState.SUCCEEDED}


def _snapshot(conn: Connection, remote: Remote, lab: LoadedLab) -> Snapshot:
    from repx.run.spec import output_path  # noqa: PLC0415

    lines = []
    for job_id, info in lab.jobs.items():
        outs = [output_path(p) for p in info.outputs.values()]
        lines.append("\t".join([job_id, *outs]))
    stdout = _run_runner(
        conn, remote, "snapshot", remote.base, input_text="".join(x + "\n" for x in lines)
    )
    own: dict[str, JobState] = {}
    reasons: dict[str, str] = {}
    records: dict[str, JobResult] = {}
    head, _, tail = stdout.partition("--\n")
    committed_ok: set[str] = set()
    for line in head.splitlines():
        kind, _, rest = line.partition("\t")
        job, _, why = rest.partition("\t")
        if kind == "S":
            committed_ok.add(job)
        elif kind == "R":
            own[job] = JobState.RUNNING
        elif kind == "Q":
            own[job] = JobState.QUEUED  # its runner will start it next
        elif kind == "D":
            reasons[job] = why
    for line in tail.splitlines():
        try:
            record = JobResult.model_validate_json(line)
        except ValidationError:
            continue  # a torn line
        if record.job in lab.jobs:
            records[record.job] = record
    for job in committed_ok:
        if job not in own:
            own[job] = JobState.SUCCEEDED
    for job, record in records.items():
        if job in own or record.succeeded:
            continue
        own[job] = JobState.FAILED
        if record.reason:
            reasons[job] = record.reason
    return Snapshot(own, reasons, records)


_RUN_RUNNER: Final = (
    'r=$1; shift; t=$(cat "$r/tools" 2>/dev/null) || exit 99; exec "$t/bash" "$r/runner.sh" "$@"'
)
#: exit status of :data:`_RUN_RUNNER` when nothing was ever synced to the target
_NEVER_RUN: Final = 99
#: exit status of the runner's ``log`` when the job has no such log
_NO_LOG: Final = 3


def runner_argv(remote: Remote, *args: str) -> list[str]:
    """The remote argv that runs the runner (with the host-tools bash of the last sync)."""
    return ["sh", "-c", _RUN_RUNNER, "sh", remote.base_path, *args]


def _run_runner(conn: Connection, remote: Remote, *args: str, input_text: str | None = None) -> str:
    answer = conn.run(runner_argv(remote, *args), input_text=input_text, check=False)
    if answer.returncode == _NEVER_RUN:
        raise RemoteError(
            f"{conn.label}: nothing has run on this target yet ({remote.base_path} has no"
            f" runner); start with repx run --target {remote.name}"
        )
    if answer.returncode != 0:
        raise RemoteError(f"{conn.label}: the remote runner failed: {answer.stderr.strip()}")
    return answer.stdout


def remote_status(remote: Remote, lab_path: Path, run: str | None) -> StatusReport:
    """``repx status --target NAME`` of an SSH target: the same report as a local store."""
    lab = open_lab(lab_path)
    if run is not None and run not in lab.runs:
        known = ", ".join(lab.revision.run_order or sorted(lab.runs))
        raise UsageError(f"unknown run '{run}' (runs: {known})")
    with remote.connect() as conn:
        snapshot = _snapshot(conn, remote, lab)
    states, reasons = propagate(lab, snapshot.own, snapshot.reasons)
    runs = [run] if run is not None else list(lab.revision.run_order or lab.runs)
    order = lab_order(lab)
    entries: list[JobStatusEntry] = []
    stages: dict[tuple[str, str], dict[JobState, int]] = {}
    for name in runs:
        for job_id in sorted(lab.runs[name].jobs, key=order.__getitem__):
            stage = lab.jobs[job_id].stage
            state = states.get(job_id, JobState.PENDING)
            record = snapshot.records.get(job_id)
            code = record.exit_code if record is not None else None
            entries.append(
                JobStatusEntry(
                    id=job_id,
                    run=name,
                    stage=stage,
                    status=state,
                    exit_code=code if isinstance(code, int) else None,
                    reason=reasons.get(job_id),
                )
            )
            counts = stages.setdefault((name, stage), dict.fromkeys(JobState, 0))
            counts[state] += 1
    return StatusReport(
        lab=os.fspath(lab.root),
        base=f"{remote.address}:{remote.base}",
        stages=tuple(StageStatus(run=r, stage=s, counts=c) for (r, s), c in stages.items()),
        jobs=tuple(entries),
    )


# -- log, cancel ----------------------------------------------------------------------


def _resolve(lab_path: Path, token: str) -> tuple[LoadedLab, str]:
    """The lab (it is here: it was synced from here) and the job ``token`` names in it."""
    from repx.inspect.resolve import resolve_job  # noqa: PLC0415
    from repx.inspect.view import LabView  # noqa: PLC0415

    lab = open_lab(lab_path)
    return lab, resolve_job(LabView(lab), token)


def print_remote_log(
    remote: Remote,
    lab_path: Path,
    token: str,
    *,
    stderr: bool,
    lines: int | None,
    follow: bool,
) -> None:
    """Print a job's log on the target (``follow``: until the job ends), as ``repx log``."""
    _lab, job = _resolve(lab_path, token)
    name = "stderr.log" if stderr else "stdout.log"
    count = "-1" if lines is None else str(lines)
    with remote.connect() as conn:
        # the runner prints the log on its stderr: process.stream hands it over line by line
        argv = conn.stream_argv(
            runner_argv(remote, "log", remote.base, job, name, count, "1" if follow else "0")
        )

        def echo(line: str) -> None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        result = process.stream(argv, on_stderr_line=echo, check=False)
        if result.returncode == _NO_LOG:
            raise UsageError(f"job {job} has no {name} on {conn.label} (states: repx status)")
        if result.returncode == _NEVER_RUN:
            raise RemoteError(f"{conn.label}: nothing has run on this target yet")
        if result.returncode != 0:
            raise RemoteError(f"{conn.label}: reading the log of {job} failed")


#: exit statuses of the runner's ``output``
_NO_OUTPUTS: Final = 4
_NO_SUCH_PATH: Final = 5
_OUTSIDE: Final = 6


def remote_output(
    remote: Remote, lab_path: Path, token: str, path: str | None
) -> bytes | OutputListing:
    """``show output JOB [PATH]`` on the target: a file's bytes, or a listing of ``out/``."""
    lab, job = _resolve(lab_path, token)
    rel = ""
    if path is not None:
        declared = lab.jobs[job].outputs.get(path)
        rel = declared.removeprefix("$out").lstrip("/") if declared is not None else path
        if rel.startswith("/") or ".." in rel.split("/"):
            raise UsageError(f"'{path}' is outside the outputs of job {job}")
    with remote.connect() as conn:
        code, data, err = conn.read_bytes(runner_argv(remote, "output", remote.base, job, rel))
        label = conn.label
    if code == _NO_OUTPUTS:
        raise UsageError(
            f"job {job} has no outputs on {label} (states: repx status --target {remote.name})"
        )
    if code == _NO_SUCH_PATH:
        raise UsageError(f"job {job} has no output '{path}' on {label}")
    if code == _OUTSIDE:
        raise UsageError(f"'{path}' is outside the outputs of job {job}")
    if code == _NEVER_RUN:
        raise RemoteError(f"{label}: nothing has run on this target yet")
    if code != 0:
        raise RemoteError(f"{label}: reading the outputs of {job} failed: {last_line(err)}")
    out_dir = f"{remote.base}/outputs/{job}/out"
    head, _, data = data.partition(b"\n")
    if head == b"file":
        return data
    files = []
    for line in data.decode("utf-8", "replace").splitlines():
        kind, size, name = [*line.split("\t", 2), "", ""][:3]
        files.append(OutputFile(path=name, size=int(size) if kind == "f" else None))
    return OutputListing(
        id=job,
        short_id=job[:8],
        status=JobState.SUCCEEDED.value,
        directory=f"{remote.address}:{out_dir}/{rel}".rstrip("/"),
        files=files,
    )


def remote_cancel(remote: Remote, jobs: Sequence[str] | None = None) -> list[str]:
    """Stop the submissions still running on the target (``jobs``: only those that still
    have to finish one of these jobs, as a local ``repx cancel`` stops the ``repx run``
    running them); return their ids. Each stops whole, as on Ctrl-C: its running jobs are
    recorded ``interrupted``, nothing new starts."""
    if jobs is not None and not jobs:
        return []
    wanted = "".join(j + "\n" for j in jobs or ())
    with remote.connect() as conn:
        argv = runner_argv(remote, "live", remote.base_path)
        answer = conn.run(argv, input_text=wanted, check=False)
        if answer.returncode == _NEVER_RUN:
            return []  # nothing ever ran there
        if answer.returncode != 0:
            raise RemoteError(f"{conn.label}: the remote runner failed: {answer.stderr.strip()}")
        listing = answer.stdout.split()
        for sub in listing:
            _run_runner(conn, remote, "cancel", f"{remote.base_path}/submissions/{sub}")
        return listing


# -- pull -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    """What ``repx pull`` fetched."""

    jobs: tuple[str, ...]
    already: int
    sent: rsync.Transfer
    base: Path


def pull(remote: Remote, lab_path: Path, selectors: Sequence[str], local_base: Path) -> Pulled:
    """Fetch the committed successes of the selected jobs into the local output store,
    each committed there by rename (the local protocol: nothing half-written is visible)."""
    lab = open_lab(lab_path)
    selection = select(lab, selectors)
    store = Store.open(local_base)
    try:
        index = store.read_index()
        with remote.connect() as conn:
            snapshot = _snapshot(conn, remote, lab)
            wanted = [j for j in selection.jobs if j in snapshot.done() and not index.succeeded(j)]
            already = sum(1 for j in selection.jobs if index.succeeded(j))
            transfer = rsync.Transfer()
            if wanted:
                staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=store.work))
                try:
                    sources = [f":{remote.base}/outputs/./{job}" for job in wanted]
                    transfer = rsync.copy(
                        conn, sources, f"{staging}/", options=["--relative"], what="outputs"
                    )
                    for job in wanted:
                        _commit_pulled(store, job, staging / job)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        return Pulled(tuple(wanted), already, transfer, store.root)
    finally:
        store.close()


def _commit_pulled(store: Store, job: str, fetched: Path) -> None:
    result = JobResult.model_validate_json((fetched / "repx" / "result.json").read_bytes())
    lock = store.lock(job)
    try:
        work, _nonce = store.new_attempt(job)
        shutil.rmtree(work)
        fetched.rename(work)
        store.commit(job, work, result)
    finally:
        lock.release()


def local_base_of(cli_base: Path | None) -> Path:
    """Where pulled outputs go: ``--base``, else ./repx-runs (the SSH target's own base is
    a directory on that host)."""
    return resolve_base(cli_base, Target())
