"""A real single-node SLURM cluster (slurmctld + slurmd + munged on this host) for tests.

Started with ``tools/slurm-single-node.sh`` (the tested start/stop script) with settings that
make short jobs fast: ``SchedulerParameters=batch_sched_delay=0,sched_min_interval=0`` and
more CPUs declared than exist (``SlurmdParameters=config_overrides``), so that many trivial
jobs start per scheduling pass. A cluster that already answers (``.ci/run`` starts one; a
developer may have one running) is used as it is and left running.

Typical use::

    from slurm_cluster import SlurmCluster

    @pytest.fixture(scope="session")
    def slurm_cluster():
        with SlurmCluster.session() as cluster:
            yield cluster
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from repx.slurm import parse_show_job

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "slurm-single-node.sh"
#: CPUs declared for the node (more than the machine has: trivial jobs start in waves of this).
CPUS = 16
SCHED_PARAMS = "batch_sched_delay=0,sched_min_interval=0"
_PROGRAMS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its runtime directory and whether we started it."""

    directory: Path | None
    started_here: bool

    @staticmethod
    def missing() -> str | None:
        """Why no cluster can be started here (None: it can)."""
        absent = [p for p in _PROGRAMS if shutil.which(p) is None]
        if absent:
            return f"SLURM is not installed ({', '.join(absent)} not on PATH; apt-get install slurm-wlm munge)"
        if os.geteuid() != 0:
            return "starting a local SLURM cluster needs root (munged, slurmd)"
        return None

    @staticmethod
    def answering() -> bool:
        """True when a controller answers and the node is usable."""
        try:
            result = subprocess.run(
                ["sinfo", "--noheader", "--Node", "--format=%T"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        states = result.stdout.split()
        return result.returncode == 0 and any(
            s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states
        )

    @classmethod
    @contextmanager
    def session(cls) -> Iterator[SlurmCluster]:
        """Use the running cluster, or start one and stop it at the end (skip if impossible)."""
        if shutil.which("sinfo") is not None and cls.answering():
            yield cls(None, started_here=False)
            return
        why = cls.missing()
        if why is not None:
            pytest.skip(why)
        directory = Path(tempfile.mkdtemp(prefix="repx-slurm-"))
        env = {
            **os.environ,
            "SLURM_DIR": str(directory),
            "CPUS": str(CPUS),
            "SCHED_PARAMS": SCHED_PARAMS,
        }
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
        )
        try:
            if started.returncode != 0:
                pytest.fail(
                    f"cannot start the local SLURM cluster:\n{started.stdout}{started.stderr}"
                )
            yield cls(directory, started_here=True)
        finally:
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, check=False)
            shutil.rmtree(directory, ignore_errors=True)


def squeue_states(*job_ids: str) -> dict[str, str]:
    """``123_4`` -> state of every task of ``job_ids`` SLURM still knows."""
    result = subprocess.run(
        [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i|%T",
            f"--jobs={','.join(job_ids)}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        states[job] = state
    return states


def show_job(job_id: str) -> list[dict[str, str]]:
    """``scontrol show job -o ID`` as one dict per record (see repx.slurm.parse_show_job)."""
    result = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        check=True,
    )
    return [parse_show_job(line) for line in result.stdout.splitlines() if line.strip()]
