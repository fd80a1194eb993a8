"""docker: find it, load a lab image into the daemon once, and its own ``run`` options.

``docker load`` reads a tar (the daemon is told nothing else): the lab's OCI layout
carries a docker-archive ``manifest.json`` besides ``index.json``, so the tar of the
layout directory (:func:`repx.oci.write_tar`) loads into any docker since 1.10. The image
id is the digest of its config in both formats, so it is found again by id.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Final

from repx import oci, process
from repx.oci import LabImage

logger = logging.getLogger(__name__)

NAME: Final = "docker"
#: Jobs write their logs through repx (attached stdout/stderr), not docker's log files.
RUN_OPTIONS: Final = ("--log-driver=none",)
#: ``rm`` of a container whose job must end now (docker kills it at once).
REMOVE_OPTIONS: Final = ("--force",)
#: Limits the daemon cannot give beyond a value (none known).
MAX_LIMITS: Final[dict[str, int]] = {}


def find() -> Path | None:
    """The docker client on PATH, or None."""
    return process.which(NAME)


def check(program: Path) -> str | None:
    """None when the daemon answers, else why not (docker's last line: usually "Cannot
    connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon
    running?")."""
    result = process.run([program, "version", "--format", "{{.Server.Version}}"], check=False)
    if result.returncode == 0 and result.stdout.strip():
        return None
    return _last_line(result.stderr or result.stdout) or f"exit status {result.returncode}"


#: What the user can do about a daemon that does not answer.
NOT_RUNNING_HINT: Final = "start the docker daemon (dockerd), or set DOCKER_HOST to its socket"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def global_options(oci_runtime: str | None) -> list[str]:
    """Options before ``run`` (the daemon chooses the OCI runtime: none)."""
    return []


def user_options() -> list[str]:
    """The daemon runs jobs as root unless told: run them as the caller, as bubblewrap does,
    so that the outputs belong to the user who runs repx."""
    return ["--user", f"{os.getuid()}:{os.getgid()}"]


def has_image(program: Path, image_id: str) -> bool:
    """True when the daemon holds the image (by id)."""
    result = process.run(
        [program, "image", "inspect", "--format", "{{.Id}}", image_id], check=False
    )
    return result.returncode == 0


def load(program: Path, image: LabImage) -> None:
    """Load the image from a tar of its layout, tagged ``<tag>``; raises ProcessError."""
    logger.info("docker: loading image %s from %s", image.tag, image.layout)
    with tempfile.TemporaryDirectory(prefix="repx-docker-") as tmp:
        archive = Path(tmp) / "image.tar"
        oci.write_tar(Path(image.layout), archive)
        process.run([program, "load", "--quiet", "--input", archive])
    process.run([program, "tag", image.id, image.tag])
