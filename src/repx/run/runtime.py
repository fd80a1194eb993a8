"""Runtimes: how a job's process is started (native, sandboxed by bubblewrap, or in the
lab's image by podman or docker: :mod:`repx.run.containers`).

Both give the job the same environment: ``PATH`` = the lab's host-tools,
``TMPDIR=/tmp`` (a private tmpfs under bwrap), ``HOME=/homeless-shelter`` (as in Nix
builds: it does not exist), ``LANG=C.UTF-8`` and ``REPX_JOB_ID``; nothing else of the
caller's environment leaks in, so native and bwrap runs produce the same outputs.

Under bwrap a job sees only the Nix store (or the lab's ``store/`` copy), the lab, its
inputs read-only, its work directory (``out/`` writable), ``/bin/sh`` and
``/usr/bin/env`` from the lab's host-tools, and a private ``/dev``, ``/proc``, ``/tmp``
(docs/running.md, "What a job can see"). Host paths are visible only when the target
asks for them (``mount_host_paths``, ``mount_paths``): such runs are not reproducible,
and their results say so (``impure``).
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH110, PTH117, PTH118

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from repx import bwrap
from repx.config import RuntimeKind, Target
from repx.errors import UsageError
from repx.lab.loader import LoadedLab
from repx.oci import LabImage
from repx.run import containers
from repx.run.spec import JobSpec

#: TMPDIR of jobs (inside bubblewrap, a private tmpfs).
_TMP: Final = "/tmp"
#: HOME of jobs: a directory that does not exist, as in Nix builds.
_HOME: Final = "/homeless-shelter"
#: The host root, as recorded in ``impure`` by ``mount_host_paths``.
HOST_ROOT: Final = "/"
#: Programs that scripts and libraries call by these absolute paths (POSIX system() and
#: popen() run /bin/sh; `#!/usr/bin/env python3` shebangs), linked to the lab's
#: host-tools, which are part of the lab — not the host's.
_LINKS: Final = {"/bin/sh": "sh", "/usr/bin/env": "env"}
#: A job consuming more upstream jobs than this sees the whole outputs directory
#: (read-only) instead of one bind per upstream job: each bind costs ~0.2 ms and a few
#: hundred bytes of bwrap's argv, which the kernel limits.
MAX_INPUT_BINDS: Final = 64


class Runtime(BaseModel):
    """A resolved runtime (serialisable, so a cluster node can use it as is)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RuntimeKind
    #: PATH given to jobs: the lab's host-tools
    path: str
    #: the outputs directory of the store (upstream outputs are bound from there)
    outputs: str
    bwrap: str | None = None
    #: a lab's store/ copy bound at /nix/store (hosts whose store lacks the lab's closure)
    store: str | None = None
    #: the root file system of the lab's image (containerMode "unified")
    image: str | None = None
    #: containerMode "per-run": each run's image root file system, by run name
    run_images: dict[str, str] = {}
    #: False where the kernel refuses user namespaces (capabilities are dropped anyway)
    userns: bool = True
    #: impure: the host's top-level directories are visible read-only
    mount_host_paths: bool = False
    #: impure: host paths bound read-only at the same place
    mount_paths: tuple[str, ...] = ()
    #: podman, docker: the engine program, its OCI runtime (None: its default), the image
    #: id, and containerMode "per-run": each run's image id, by run name
    engine: str | None = None
    oci_runtime: str | None = None
    image_id: str | None = None
    run_image_ids: dict[str, str] = {}
    #: the lab's images (a SLURM node loads them into its own engine storage)
    images: tuple[LabImage, ...] = ()

    @property
    def impure(self) -> tuple[str, ...]:
        """The host paths a job of this runtime sees beyond the lab (empty: hermetic)."""
        if self.kind is RuntimeKind.NATIVE:
            return ()
        return ((HOST_ROOT,) if self.mount_host_paths else ()) + self.mount_paths

    def command(
        self,
        spec: JobSpec,
        work: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        interactive: bool = False,
        inputs_exist: bool = False,
    ) -> tuple[list[str], dict[str, str], str]:
        """argv, environment and working directory of ``spec``'s attempt in ``work``.

        ``extra_env`` adds to the job's environment and ``interactive`` keeps stdin (and
        the terminal) attached: ``repx debug-run``'s shell. ``inputs_exist``: build it as
        if every upstream output directory existed (a SLURM light task, precomputed before
        they do, checks :meth:`input_dirs` on its node).
        """
        w = os.fspath(work)
        out = os.path.join(w, "out")
        repx = os.path.join(w, "repx")
        argv = [
            spec.executable,
            out,
            os.path.join(repx, "inputs.json"),
            os.path.join(repx, "parameters.json"),
        ]
        env = {
            "PATH": self.path,
            "HOME": _HOME,
            "TMPDIR": _TMP,
            "LANG": "C.UTF-8",
            "REPX_JOB_ID": spec.job,
        }
        if extra_env:
            env.update(extra_env)
        if self.kind is RuntimeKind.NATIVE:
            return argv, env, out
        inputs = self.input_dirs(spec)
        if not inputs_exist:
            # an upstream output deleted since (its consumers then fail reading it): skip
            # it rather than refuse to start the sandbox
            inputs = [d for d in inputs if d == self.outputs or os.path.exists(d)]
        readonly = [spec.lab_root, *self.mount_paths, *inputs, w]
        if self.kind in containers.CONTAINER_KINDS:
            command = containers.job_argv(
                self._engine(spec.run),
                name=containers.container_name(w),
                readonly=readonly,
                writable=[out],
                chdir=out,
                env=env,
                argv=argv,
                interactive=interactive,
            )
            return command, containers.engine_env(spec.job), out
        assert self.bwrap is not None
        image = self.run_images.get(spec.run, self.image)
        options = self._options(readonly, [out], chdir=out, image=image)
        return bwrap.command(Path(self.bwrap), options, argv), env, out

    def _options(
        self,
        readonly: Sequence[str],
        writable: Sequence[str],
        chdir: str | None = None,
        image: str | None = None,
    ) -> list[str]:
        image = image or self.image
        return bwrap.sandbox_options(
            readonly=[Path(p) for p in readonly],
            writable=[Path(p) for p in writable],
            store=Path(self.store) if self.store else None,
            image=Path(image) if image else None,
            host_root=self.mount_host_paths,
            links=None if image or self.mount_host_paths else self._links(),
            userns=self.userns,
            chdir=Path(chdir) if chdir is not None else None,
        )

    def cleanup_argv(self, work: Path) -> list[str]:
        """The command that removes the container of the attempt in ``work`` (podman,
        docker), for when its engine process was killed; empty for other runtimes."""
        if self.kind not in containers.CONTAINER_KINDS or self.engine is None:
            return []
        return containers.remove_argv(self._engine(""), os.fspath(work))

    def _engine(self, run: str) -> containers.Engine:
        assert self.engine is not None and self.image_id is not None
        image = self.run_image_ids.get(run, self.image_id)
        return containers.Engine(self.kind, self.engine, image, self.oci_runtime, self.store)

    def _links(self) -> dict[str, str]:
        return {link: os.path.join(self.path, name) for link, name in _LINKS.items()}

    def input_dirs(self, spec: JobSpec) -> list[str]:
        """The upstream jobs' ``out/`` directories (or the whole outputs directory) that
        the sandbox binds, existing or not (:meth:`command` leaves out missing ones)."""
        if spec.store_inputs:
            # store__base: the job may read any output of the store (RepX's contract)
            return [self.outputs]
        prefix = os.path.join(self.outputs, "")
        dirs: dict[str, None] = {}
        paths = [*spec.inputs.values(), *(e.path for g in spec.gathers.values() for e in g)]
        paths += [j.out_dir for d in spec.run_metadata.values() for j in d.jobs.values()]
        for path in paths:
            if path.startswith(prefix):
                job = path[len(prefix) :].split("/", 1)[0]
                dirs[os.path.join(self.outputs, job, "out")] = None
            else:
                dirs[path] = None
        if len(dirs) > MAX_INPUT_BINDS:
            return [self.outputs]
        return list(dirs)


def missing_store_paths(lab: LoadedLab) -> list[str]:
    """The lab's store paths that this host's /nix/store lacks."""
    return [p for p in lab.meta.store_paths if not os.path.exists(p)]


def check_mount_paths(paths: Sequence[str], where: str) -> tuple[str, ...]:
    """Validate ``mount_paths``: absolute, existing, not ``/`` (``where`` names the source)."""
    checked: list[str] = []
    for path in paths:
        if not os.path.isabs(path):
            raise UsageError(f"{where}: '{path}' is not an absolute path")
        norm = os.path.normpath(path)
        if norm == HOST_ROOT:
            raise UsageError(f"{where}: '/' is the whole host; use mount_host_paths = true")
        if not os.path.exists(norm):
            raise UsageError(f"{where}: '{path}' does not exist on this host")
        if norm not in checked:
            checked.append(norm)
    return tuple(checked)


def resolve_runtime(
    lab: LoadedLab,
    requested: RuntimeKind | None,
    outputs: Path,
    *,
    mount_host_paths: bool = False,
    mount_paths: Sequence[str] = (),
) -> Runtime:
    """Choose and check the runtime: bwrap by default (it must work), native only if asked.

    ``mount_paths`` must have been checked (:func:`check_mount_paths`).
    """
    host_bin = lab.root / lab.meta.host_tools / "bin"
    missing = missing_store_paths(lab)
    store: Path | None = None
    if missing:
        store = lab.root / lab.meta.store
        if not store.is_dir():
            raise UsageError(
                f"this host's /nix/store lacks {len(missing)} store path(s) of the lab"
                f" (e.g. {missing[0]}) and the lab has no {lab.meta.store}/ copy"
            )
    if requested is RuntimeKind.NATIVE:
        if missing:
            raise UsageError(
                f"--runtime native needs the lab's store paths in /nix/store, and"
                f" {len(missing)} are missing (e.g. {missing[0]}); use --runtime bwrap,"
                f" which binds the lab's {lab.meta.store}/ copy at /nix/store"
            )
        return Runtime(
            kind=RuntimeKind.NATIVE, path=os.fspath(host_bin), outputs=os.fspath(outputs)
        )
    if requested in containers.CONTAINER_KINDS:
        if mount_host_paths:
            raise UsageError(
                f"mount_host_paths would replace the lab image's root file system under"
                f" --runtime {requested.value}; name the host paths in mount_paths instead"
            )
        fields = containers.resolve(
            lab,
            requested,
            path=os.fspath(host_bin),
            store=os.fspath(store) if store else None,
            outputs=os.fspath(outputs),
            mount_paths=mount_paths,
        )
        return Runtime(
            kind=requested,
            path=os.fspath(host_bin),
            outputs=os.fspath(outputs),
            store=os.fspath(store) if store else None,
            mount_paths=tuple(mount_paths),
            **fields,
        )
    program = bwrap.find(host_bin)
    fallback = (
        "" if requested is RuntimeKind.BWRAP else "; pass --runtime native to run without a sandbox"
    )
    if program is None:
        raise UsageError(
            f"bubblewrap (bwrap) is not installed and the lab's host-tools have none{fallback}"
        )
    run_images = image_rootfs_by_run(lab)
    # per-run: the probe (and a job of no run) uses the first run's image
    image = _image_rootfs(lab) if not run_images else Path(next(iter(run_images.values())))
    if mount_host_paths:
        # impure: the host's top-level directories take the place of the image's root
        image, run_images = None, {}
    candidate = Runtime(
        kind=RuntimeKind.BWRAP,
        path=os.fspath(host_bin),
        outputs=os.fspath(outputs),
        bwrap=os.fspath(program),
        image=os.fspath(image) if image is not None else None,
        run_images=run_images,
        store=os.fspath(store) if store else None,
        mount_host_paths=mount_host_paths,
        mount_paths=tuple(mount_paths),
    )
    problem = _probe(candidate, lab)
    if problem is None:
        return candidate
    # Kernels that forbid user namespaces: the sandbox still drops every capability.
    without = candidate.model_copy(update={"userns": False})
    if _probe(without, lab) is None:
        return without
    if (
        image is None
        and _probe(candidate.model_copy(update={"mount_host_paths": True}), lab) is None
    ):
        # bubblewrap works; the lab's shell does not without the host's files
        shell = os.path.realpath(os.path.join(candidate.path, "sh"))
        raise UsageError(
            f"the lab's host-tools shell ({shell}) does not run in the hermetic sandbox"
            f" ({problem}): host-tools must be static programs in the lab or its store;"
            " --mount-host-paths runs it impurely"
        )
    raise UsageError(f"bubblewrap ({program}) does not work here: {problem}{fallback}")


def _probe(runtime: Runtime, lab: LoadedLab) -> str | None:
    """Start ``/bin/sh -c :`` in the runtime's sandbox: None if it works, else why not."""
    program = runtime.bwrap
    assert program is not None
    # The shell a job finds: the /bin/sh link to the lab's host-tools, or the image's.
    # A lab without a host-tools shell: probe bubblewrap itself with the host's.
    if runtime.image is None and not os.path.lexists(os.path.join(runtime.path, "sh")):
        runtime = runtime.model_copy(update={"mount_host_paths": True})
    # with the mounted host paths: one that bwrap cannot bind stops the run here
    options = runtime._options([os.fspath(lab.root), *runtime.mount_paths], [])
    argv = ["/bin/sh", "-c", ":"]
    return bwrap.probe(Path(program), options, argv, {"PATH": runtime.path})


def _image_rootfs(lab: LoadedLab) -> Path | None:
    """The image root file system bwrap jobs run in, when the lab was built with one."""
    if lab.meta.container_mode not in lab.meta.images:  # "none" (or "per-run")
        return None
    return lab.root / lab.meta.images[lab.meta.container_mode] / "rootfs"


def image_rootfs_by_run(lab: LoadedLab) -> dict[str, str]:
    """containerMode "per-run": the image root file system of each run, by run name."""
    if lab.meta.container_mode != "per-run":
        return {}
    return {
        run: os.fspath(lab.root / rel / "rootfs")
        for run, rel in lab.meta.images.items()
        if run in lab.runs
    }


def impure_mounts(
    target_name: str | None, target: Target, cli_host_paths: bool, cli_paths: Sequence[str]
) -> tuple[bool, tuple[str, ...]]:
    """``mount_host_paths`` and the checked ``mount_paths`` of a target and the command line."""
    where = f"config.toml: targets.{target_name}.mount_paths" if target_name else "mount_paths"
    paths = check_mount_paths(target.mount_paths, where) + check_mount_paths(
        cli_paths, "--mount-path"
    )
    return target.mount_host_paths or cli_host_paths, tuple(dict.fromkeys(paths))


def impure_warning(runtime: Runtime) -> str | None:
    """The warning of a run whose jobs see host paths (None for a hermetic run)."""
    if not runtime.impure:
        return None
    whole = "the host's whole file system"
    what = ", ".join(whole if p == HOST_ROOT else p for p in runtime.impure)
    return (
        f"impure run, NOT reproducible: jobs see {what} (read-only); their results"
        " record it (impure)"
    )
