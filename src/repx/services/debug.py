"""``repx debug-run``: a shell (or one command) in a job's exact environment.

The job's attempt is prepared as ``repx run`` prepares it (:func:`repx.run.job.prepare`:
``out/``, ``repx/inputs.json``, gather lists, ``repx/parameters.json``), but in a scratch
store of its own under a temporary directory, and the runtime's command for the job
(:meth:`repx.run.runtime.Runtime.command`: the same sandbox, binds, PATH and environment)
runs the lab's shell instead of the stage script. Nothing is committed: the job's outputs
in the output store are never written, and the upstream outputs are read-only as for the
job itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repx import process
from repx.config import RuntimeKind, resolve_base
from repx.errors import UsageError
from repx.inspect.resolve import resolve_job
from repx.inspect.view import LabView
from repx.lab.loader import LoadedLab, open_lab
from repx.run.job import prepare
from repx.run.runtime import Runtime, impure_mounts, impure_warning, resolve_runtime
from repx.run.spec import JobSpec, make_spec
from repx.run.store import OUTPUTS, Store
from repx.services.location import Location, named_target


@dataclass(frozen=True)
class DebugOptions:
    """What ``repx debug-run`` needs, as typed values."""

    where: Location
    job: str
    #: run this with ``sh -c`` (None: an interactive shell)
    command: str | None = None
    runtime: RuntimeKind | None = None
    mount_host_paths: bool = False
    mount_paths: tuple[str, ...] = ()
    #: keep the scratch directory (its path is reported)
    keep: bool = False


@dataclass(frozen=True)
class DebugSession:
    """The prepared environment of one job, ready to run a shell in."""

    job: str
    #: the scratch attempt: ``out/`` (writable), ``repx/`` (inputs.json, parameters.json)
    work: Path
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    runtime: Runtime
    #: why the session is impure (host paths visible), or None
    warning: str | None


@contextmanager
def debug_session(options: DebugOptions) -> Iterator[DebugSession]:
    """Prepare the job's environment in a scratch directory (deleted afterwards unless
    ``keep``); a job whose inputs have not been computed yet is an error naming them."""
    target_name, target = named_target(options.where)
    base = resolve_base(options.where.base, target)
    lab = open_lab(options.where.lab)
    job = resolve_job(LabView(lab), options.job)
    outputs = base / OUTPUTS
    spec = make_spec(lab, job, outputs)
    _check_inputs(lab, spec)
    host_paths, mount_paths = impure_mounts(
        target_name, target, options.mount_host_paths, options.mount_paths
    )
    runtime = resolve_runtime(
        lab,
        options.runtime or target.runtime,
        outputs,
        mount_host_paths=host_paths,
        mount_paths=mount_paths,
    )
    scratch = Path(tempfile.mkdtemp(prefix=f"repx-debug-{job[:8]}-"))
    store = Store.open(scratch)
    lock = store.lock(job)
    try:
        attempt = prepare(store, spec, lock, runtime)
        # $out $inputs $params: the job's arguments, as the stage script gets them
        debug_env = {
            "out": os.fspath(attempt.work / "out"),
            "inputs": os.fspath(attempt.work / "repx" / "inputs.json"),
            "params": os.fspath(attempt.work / "repx" / "parameters.json"),
            "REPX_JOB_EXECUTABLE": spec.executable,
            "PS1": f"repx-debug {job[:8]}-{spec.stage}$ ",
        }
        argv, env, cwd = runtime.command(spec, attempt.work, extra_env=debug_env, interactive=True)
        # the job's command ends with its program and arguments (out, inputs, parameters)
        if argv[-4] != spec.executable:
            raise AssertionError(f"unexpected job command: {argv}")
        shell = os.fspath(Path(runtime.path) / "sh")
        yield DebugSession(
            job=job,
            work=attempt.work,
            argv=(*argv[:-4], *_shell_argv(shell, options.command, argv[-3:])),
            # (under podman and docker the job's variables are set inside the container:
            # these are the engine's, and say where the scratch attempt is)
            env={**env, **debug_env},
            cwd=cwd,
            runtime=runtime,
            warning=impure_warning(runtime),
        )
    finally:
        lock.release()
        store.close()
        if not options.keep:
            remove_scratch(scratch)


def _shell_argv(shell: str, command: str | None, args: Sequence[str]) -> list[str]:
    """The shell, with the job's arguments as ``$1 $2 $3`` (as the stage script gets them)."""
    if command is not None:
        return [shell, "-c", command, "repx-debug", *args]
    return [shell, "-i", "-s", *args]


def run_session(session: DebugSession) -> int:
    """Run the session's shell in the foreground; return its exit status."""
    return process.interactive(session.argv, env=session.env, cwd=session.cwd)


def _check_inputs(lab: LoadedLab, spec: JobSpec) -> None:
    paths = list(spec.inputs.items())
    paths += [(name, e.path) for name, entries in spec.gathers.items() for e in entries]
    for name, path in paths:
        if not os.path.exists(path):  # noqa: PTH110 (a str path)
            upstream = next(
                (i.job for i in lab.jobs[spec.job].inputs if i.name == name), "an upstream job"
            )
            raise UsageError(
                f"job {spec.job} reads input '{name}' from {upstream}, which has no"
                f" outputs yet: run it first (repx run {upstream})"
            )


def remove_scratch(scratch: Path) -> None:
    """Delete the scratch directory (the job may have left read-only directories)."""
    import shutil  # noqa: PLC0415

    for root, dirs, _ in os.walk(scratch):
        for name in dirs:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(0o755)
    shutil.rmtree(scratch, ignore_errors=True)
