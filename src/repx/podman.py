"""podman: find it, load a lab image into its storage once, and its own ``run`` options.

Images are loaded from the lab's OCI layout directory (``podman load -i DIR``: no
registry, no network) and found again by image id, so a second run does not reload.
podman's storage and configuration are the user's (``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF`` and the usual files are honoured); nothing in /etc is changed.

On hosts where podman's default OCI runtime cannot start containers (crun on a kernel
with cgroups v1 "hybrid" and without CAP_SYS_RESOURCE fails in setrlimit, then on
cgroups), the runtime is probed and falls back to ``--runtime <runc>``
(:mod:`repx.run.containers`); the resource limits are always given explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from repx import process
from repx.oci import LabImage

logger = logging.getLogger(__name__)

NAME: Final = "podman"
#: podman with --read-only mounts tmpfs on /run, /var/tmp and /tmp itself; the job gets the
#: same single /tmp as under bubblewrap instead. No /etc/hosts of podman's: the image's.
#: Jobs write their logs through repx (attached stdout/stderr): no second copy in podman's
#: log files (which also makes a container start faster).
RUN_OPTIONS: Final = ("--read-only-tmpfs=false", "--no-hosts", "--log-driver=none")
#: ``rm`` of a container whose job must end now (no stop timeout: it ignored SIGTERM).
REMOVE_OPTIONS: Final = ("--force", "--time=0")
#: podman 4 lowers its own RLIMIT_NPROC to 32768 when it starts, and a container cannot be
#: given more than podman has (runc then fails with EPERM): the jobs' limit is capped there.
MAX_LIMITS: Final = {"nproc": 32768}


def find() -> Path | None:
    """The podman on PATH, or None."""
    return process.which(NAME)


def check(program: Path) -> str | None:
    """None when podman answers (its storage and configuration can be read), else why not."""
    result = process.run([program, "version", "--format", "{{.Client.Version}}"], check=False)
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else f"exit status {result.returncode}"


#: What the user can do about a podman that does not answer.
NOT_RUNNING_HINT: Final = "check `podman info` (its storage and containers.conf)"


def oci_runtime_fallback() -> Path | None:
    """The OCI runtime tried when podman's default one fails here: runc, if installed."""
    return process.which("runc")


def global_options(oci_runtime: str | None) -> list[str]:
    """Options before ``run``: the OCI runtime, when not podman's default."""
    return ["--runtime", oci_runtime] if oci_runtime else []


def has_image(program: Path, image_id: str) -> bool:
    """True when podman's storage holds the image (by id: the digest of its config)."""
    return process.run([program, "image", "exists", image_id], check=False).returncode == 0


def load(program: Path, image: LabImage) -> None:
    """Load the image from its OCI layout directory and tag it ``localhost/<tag>``.

    ``podman load`` names an image loaded from a directory after the directory's path;
    the tag replaces that name. Raises ProcessError when podman refuses.
    """
    logger.info("podman: loading image %s from %s", image.tag, image.layout)
    process.run([program, "load", "--quiet", "--input", image.layout])
    process.run([program, "untag", image.id])
    process.run([program, "tag", image.id, f"localhost/{image.tag}"])
