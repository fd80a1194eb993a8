"""The container runtimes (``podman``, ``docker``): a job runs in the lab's image.

A job sees what it sees under bubblewrap with the same image (docs/running.md, "What a
job can see"): the image's root file system (read-only), the Nix store — the host's, or
the lab's ``store/`` copy — at ``/nix/store``, the lab, its inputs and its attempt
directory read-only, ``out/`` writable, a private ``/tmp``, ``/dev`` and ``/proc``; no
network (``--network=none``), no capabilities, no new privileges, and exactly the job's
environment (the image's ``/usr/bin/env -i``, since engines add variables of their own).
What differs, and cannot be hidden: ``/sys`` and ``/run`` (podman's) exist, and the
engine's init is process 1. The image is loaded once per engine storage and found again by
id (:mod:`repx.podman`, :mod:`repx.docker`); images never come from a registry
(``--pull=never``).
"""

from __future__ import annotations

import logging
import os
import re
import resource
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Final

from repx import docker, oci, podman, process
from repx.config import RuntimeKind
from repx.errors import ProcessError, ProgramNotFoundError, UsageError
from repx.lab.loader import LoadedLab

logger = logging.getLogger(__name__)

NIX_STORE: Final = "/nix/store"
CONTAINER_KINDS: Final = frozenset({RuntimeKind.PODMAN, RuntimeKind.DOCKER})
#: The tmpfs at /tmp: executable and owner-only, as bubblewrap's.
_TMPFS: Final = "--tmpfs=/tmp:rw,exec,nosuid,nodev,mode=755"
#: Where a job's environment is set: the image's env (coreutils, linked by the skeleton).
_ENV: Final = "/usr/bin/env"
_LIMITS: Final = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
#: What a container name may not hold (engines accept [a-zA-Z0-9][a-zA-Z0-9_.-]*).
_NAME_JUNK: Final = re.compile(r"[^a-zA-Z0-9_.-]")


def engine(kind: RuntimeKind) -> ModuleType:
    """The module of the program behind ``kind``."""
    return podman if kind is RuntimeKind.PODMAN else docker


@dataclass(frozen=True)
class Engine:
    """How containers are started: the engine, its OCI runtime, the image, the store."""

    kind: RuntimeKind
    program: str
    image_id: str
    #: None: the engine's default OCI runtime
    oci_runtime: str | None = None
    #: the lab's store/ copy bound at /nix/store (None: the host's /nix/store)
    store: str | None = None


def container_name(work: str) -> str:
    """The container of the attempt in ``work``: ``repx-<job>.<nonce>`` (unique, and
    found again by :func:`remove_argv`)."""
    return "repx-" + _NAME_JUNK.sub("_", Path(work).name)


def remove_argv(eng: Engine, work: str) -> list[str]:
    """The engine's argv that removes the attempt's container, running or not (the job's
    engine process was killed: ``--rm`` did not happen)."""
    mod = engine(eng.kind)
    name = container_name(work)
    return [eng.program, *mod.global_options(eng.oci_runtime), "rm", *mod.REMOVE_OPTIONS, name]


def removal_for(argv: Sequence[str]) -> list[str] | None:
    """The removal of the container that the engine command ``argv`` (a job's, as
    :func:`job_argv` writes it) runs; None when ``argv`` is not one."""
    if not argv or "run" not in argv:
        return None
    kinds = {engine(k).NAME: k for k in CONTAINER_KINDS}
    kind = kinds.get(Path(argv[0]).name)
    names = [a.removeprefix("--name=") for a in argv if a.startswith("--name=repx-")]
    if kind is None or not names:
        return None
    options = list(argv[1 : list(argv).index("run")])  # e.g. --runtime runc
    return [argv[0], *options, "rm", *engine(kind).REMOVE_OPTIONS, names[0]]


def job_argv(
    eng: Engine,
    *,
    name: str | None = None,
    readonly: Sequence[str],
    writable: Sequence[str],
    chdir: str,
    env: Mapping[str, str],
    argv: Sequence[str],
    interactive: bool = False,
) -> list[str]:
    """The engine's argv that runs ``argv`` with exactly ``env`` in the image
    (``interactive``: stdin attached, and a terminal when repx has one)."""
    mod = engine(eng.kind)
    args = [eng.program, *mod.global_options(eng.oci_runtime), "run", "--rm", "--init"]
    if interactive:
        args += ["--interactive", *(["--tty"] if sys.stdin.isatty() else [])]
    if name is not None:
        args.append(f"--name={name}")
    args += ["--pull=never", "--network=none", "--read-only", _TMPFS, "--cap-drop=ALL"]
    args += ["--security-opt=no-new-privileges", f"--hostname={socket.gethostname()}"]
    # The caller's own limits (what a bubblewrap job inherits): an engine's defaults may
    # exceed what this process may set (crun then fails to start the container).
    caps = mod.MAX_LIMITS
    args += [f"--ulimit={n}={_limits(r, caps.get(n))}" for n, r in _LIMITS.items()]
    args += list(mod.RUN_OPTIONS)
    if eng.kind is RuntimeKind.DOCKER:
        args += docker.user_options()
    args.append(_bind(eng.store or NIX_STORE, NIX_STORE, readonly=True))
    for path in readonly:
        if eng.store is None and path.startswith(NIX_STORE + "/"):
            continue  # visible: the host's store is bound whole
        args.append(_bind(path, path, readonly=True))
    args += [_bind(path, path, readonly=False) for path in writable]
    args += [f"--workdir={chdir}", eng.image_id, _ENV, "-i"]
    args += [f"{key}={value}" for key, value in env.items()]
    return [*args, *argv]


def engine_env(job: str | None = None) -> dict[str, str]:
    """The engine's own environment: the caller's (its storage and configuration
    variables, XDG_RUNTIME_DIR, PATH to its helpers), with the job's id so that a later
    run recognises the engine process of an orphaned attempt (:mod:`repx.run.orphans`)."""
    env = dict(os.environ)
    if job is not None:
        env["REPX_JOB_ID"] = job
    return env


def resolve(
    lab: LoadedLab,
    kind: RuntimeKind,
    *,
    path: str,
    store: str | None,
    outputs: str,
    mount_paths: Sequence[str],
) -> dict[str, object]:
    """Check the engine, load the lab's images (once) and probe a container.

    Returns the container fields of the runtime: ``engine``, ``oci_runtime``,
    ``image_id``, ``run_image_ids`` and ``images`` (what a SLURM node loads).
    """
    mod = engine(kind)
    program = mod.find()
    if program is None:
        raise UsageError(
            f"--runtime {kind.value}: {mod.NAME} is not installed (not on PATH);"
            " install it, or use --runtime bwrap"
        )
    problem = mod.check(program)
    if problem is not None:
        raise UsageError(
            f"--runtime {kind.value}: {mod.NAME} ({program}) does not answer: {problem};"
            f" {mod.NOT_RUNNING_HINT}"
        )
    images = oci.lab_images(lab)
    if not images:
        raise UsageError(
            f"--runtime {kind.value} runs jobs in the lab's image, and this lab has none"
            ' (containerMode = "none"): build it with containerMode = "unified" (or'
            ' "per-run"), or use --runtime bwrap'
        )
    for where in (os.fspath(lab.root), outputs, *([store] if store else []), *mount_paths):
        if "," in where:
            raise UsageError(
                f"--runtime {kind.value}: '{where}' holds a ',', which {mod.NAME}'s --mount"
                " cannot express; move it or use --runtime bwrap"
            )
    for image in {i.id: i for i in images.values()}.values():
        _ensure_loaded(mod, program, image)
    run_ids = {run: i.id for run, i in images.items() if run in lab.runs}
    if lab.meta.container_mode != "per-run":
        run_ids = {}
    image_id = images.get("unified", next(iter(images.values()))).id
    candidate = Engine(kind, os.fspath(program), image_id, store=store)
    readonly = [os.fspath(lab.root), *mount_paths]
    problem = _probe(candidate, readonly, path)
    oci_runtime: str | None = None
    if problem is not None:
        fallback = podman.oci_runtime_fallback() if kind is RuntimeKind.PODMAN else None
        with_fallback = replace(candidate, oci_runtime=os.fspath(fallback or ""))
        again = None if fallback is None else _probe(with_fallback, readonly, path)
        if fallback is None or again is not None:
            tried = "" if fallback is None else f"; with --runtime {fallback}: {again}"
            raise UsageError(
                f"{mod.NAME} ({program}) cannot run the lab's image here: {problem}{tried}"
            )
        oci_runtime = with_fallback.oci_runtime
        logger.info(
            "%s's default OCI runtime fails here (%s): using %s", mod.NAME, problem, fallback
        )
    return {
        "engine": os.fspath(program),
        "oci_runtime": oci_runtime,
        "image_id": image_id,
        "run_image_ids": run_ids,
        "images": tuple({i.id: i for i in images.values()}.values()),
    }


def on_node(
    kind: RuntimeKind, program: str, oci_runtime: str | None, images: Sequence[oci.LabImage]
) -> tuple[str, str | None]:
    """A SLURM node's engine and OCI runtime for a run resolved on the submit host, with
    the lab's images loaded into this node's engine storage (each node has its own).

    Raises UsageError naming what this node lacks.
    """
    mod = engine(kind)
    if not os.access(program, os.X_OK):
        found = mod.find()
        if found is None:
            raise UsageError(f"{mod.NAME} is neither at {program} nor on this node's PATH")
        program = os.fspath(found)
    if oci_runtime is not None and not os.access(oci_runtime, os.X_OK):
        fallback = podman.oci_runtime_fallback() if kind is RuntimeKind.PODMAN else None
        if fallback is None:
            raise UsageError(f"the OCI runtime {oci_runtime} is not on this node")
        oci_runtime = os.fspath(fallback)
    problem = mod.check(Path(program))
    if problem is not None:
        raise UsageError(f"{mod.NAME} ({program}) does not answer on this node: {problem}")
    for image in images:
        _ensure_loaded(mod, Path(program), image)
    return program, oci_runtime


def _ensure_loaded(mod: ModuleType, program: Path, image: oci.LabImage) -> None:
    if mod.has_image(program, image.id):
        return
    try:
        mod.load(program, image)
    except (ProcessError, ProgramNotFoundError) as exc:
        why = getattr(exc, "details", "") or exc.message
        raise UsageError(
            f"{mod.NAME} cannot load the lab's image from {image.layout}: {why.strip()}"
        ) from None


def _probe(eng: Engine, readonly: Sequence[str], path: str) -> str | None:
    """Start ``/bin/sh -c :`` in the image: None if it works, else the engine's last line."""
    argv = job_argv(
        eng,
        readonly=readonly,
        writable=(),
        chdir="/",
        env={"PATH": path},
        argv=["/bin/sh", "-c", ":"],
    )
    try:
        result = process.run(argv, check=False, env=engine_env())
    except (ProgramNotFoundError, OSError) as exc:
        return f"cannot be started: {exc}"
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def _limits(res: int, cap: int | None) -> str:
    """``soft:hard`` of this process's limit ``res``, at most ``cap`` (-1: unlimited)."""
    values = resource.getrlimit(res)
    if cap is not None:
        values = (_capped(values[0], cap), _capped(values[1], cap))
    return ":".join("-1" if v == resource.RLIM_INFINITY else str(v) for v in values)


def _bind(source: str, dest: str, *, readonly: bool) -> str:
    mount = f"--mount=type=bind,source={source},destination={dest}"
    return mount + (",readonly" if readonly else "")


def _capped(value: int, cap: int) -> int:
    return cap if value == resource.RLIM_INFINITY else min(value, cap)
