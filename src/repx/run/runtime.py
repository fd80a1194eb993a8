"""Runtimes: how a job's process is started (native, or sandboxed by bubblewrap).

Both give the job the same environment: ``PATH`` = the lab's host-tools,
``TMPDIR=/tmp`` (a private tmpfs under bwrap), ``HOME=/homeless-shelter`` (as in Nix
builds: it does not exist), ``LANG=C.UTF-8`` and ``REPX_JOB_ID``; nothing else of the
caller's environment leaks in, so native and bwrap runs produce the same outputs.
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH110, PTH118

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from repx import bwrap
from repx.config import RuntimeKind
from repx.errors import UsageError
from repx.lab.loader import LoadedLab
from repx.run.spec import JobSpec

#: TMPDIR of jobs (inside bubblewrap, a private tmpfs).
_TMP: Final = "/tmp"
#: HOME of jobs: a directory that does not exist, as in Nix builds.
_HOME: Final = "/homeless-shelter"


class Runtime(BaseModel):
    """A resolved runtime (serialisable, so a cluster node can use it as is)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RuntimeKind
    #: PATH given to jobs: the lab's host-tools
    path: str
    #: the outputs directory of the store (read-only inside the sandbox)
    outputs: str
    bwrap: str | None = None
    #: a lab's store/ copy bound at /nix/store (hosts whose store lacks the lab's closure)
    store: str | None = None
    #: the root file system of the lab's image (containerMode "unified"), replacing the host's
    image: str | None = None

    def command(self, spec: JobSpec, work: Path) -> tuple[list[str], dict[str, str], str]:
        """argv, environment and working directory of ``spec``'s attempt in ``work``."""
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
        if self.kind is RuntimeKind.NATIVE:
            return argv, env, out
        assert self.bwrap is not None
        options = bwrap.sandbox_options(
            readonly=[Path(spec.lab_root), Path(self.outputs), work],
            writable=[Path(out)],
            store=Path(self.store) if self.store else None,
            image=Path(self.image) if self.image else None,
            chdir=Path(out),
        )
        return bwrap.command(Path(self.bwrap), options, argv), env, out


def missing_store_paths(lab: LoadedLab) -> list[str]:
    """The lab's store paths that this host's /nix/store lacks."""
    return [p for p in lab.meta.store_paths if not os.path.exists(p)]


def resolve_runtime(lab: LoadedLab, requested: RuntimeKind | None, outputs: Path) -> Runtime:
    """Choose and check the runtime: bwrap by default (it must work), native only if asked."""
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
    program = bwrap.find(host_bin)
    fallback = (
        "" if requested is RuntimeKind.BWRAP else "; pass --runtime native to run without a sandbox"
    )
    if program is None:
        raise UsageError(
            f"bubblewrap (bwrap) is not installed and the lab's host-tools have none{fallback}"
        )
    shell = host_bin / "sh"
    probe_argv = [os.fspath(shell) if os.access(shell, os.X_OK) else "/bin/sh", "-c", ":"]
    image = _image_rootfs(lab)
    options = bwrap.sandbox_options(readonly=[lab.root], store=store, image=image)
    problem = bwrap.probe(program, options, probe_argv, {"PATH": os.fspath(host_bin)})
    if problem is not None:
        raise UsageError(f"bubblewrap ({program}) does not work here: {problem}{fallback}")
    return Runtime(
        kind=RuntimeKind.BWRAP,
        path=os.fspath(host_bin),
        outputs=os.fspath(outputs),
        bwrap=os.fspath(program),
        image=os.fspath(image) if image is not None else None,
        store=os.fspath(store) if store else None,
    )


def _image_rootfs(lab: LoadedLab) -> Path | None:
    """The image root file system bwrap jobs run in, when the lab was built with one."""
    if lab.meta.container_mode == "none":
        return None
    return lab.root / lab.meta.images[lab.meta.container_mode] / "rootfs"
