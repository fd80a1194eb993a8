"""podman and docker argv: the job's view (binds, no network, read-only), env, limits, names.

The engines themselves run in tests/integration/test_run_podman.py and test_run_docker.py.
"""

from __future__ import annotations

import os
import resource

from repx import podman
from repx.config import RuntimeKind
from repx.run import containers
from repx.run.containers import Engine
from repx.run.runtime import Runtime

IMAGE = "sha256:" + "a" * 64


def mounts(argv: list[str]) -> list[tuple[str, str, bool]]:
    found = []
    for arg in argv:
        if arg.startswith("--mount="):
            fields = dict(f.partition("=")[::2] for f in arg.removeprefix("--mount=").split(","))
            found.append((fields["source"], fields["destination"], "readonly" in fields))
    return found


def job(eng: Engine, **kwargs: object) -> list[str]:
    args: dict[str, object] = {
        "readonly": ["/data/lab", "/nix/store/x-lab", "/base/outputs/up/out", "/base/.work/j.1"],
        "writable": ["/base/.work/j.1/out"],
        "chdir": "/base/.work/j.1/out",
        "env": {"PATH": "/data/lab/host-tools/h/bin", "REPX_JOB_ID": "j"},
        "argv": ["/data/lab/jobs/j/bin/s", "/base/.work/j.1/out", "in.json", "p.json"],
    }
    return containers.job_argv(eng, **{**args, **kwargs})  # type: ignore[arg-type]


def test_podman_job_sees_what_a_bwrap_job_sees():
    argv = job(Engine(RuntimeKind.PODMAN, "/usr/bin/podman", IMAGE), name="repx-j.1")
    assert argv[:2] == ["/usr/bin/podman", "run"]
    for flag in (
        "--rm",
        "--init",
        "--pull=never",
        "--network=none",
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--log-driver=none",
        "--name=repx-j.1",
        "--workdir=/base/.work/j.1/out",
    ):
        assert flag in argv, flag
    # the host's store whole (paths in it need no bind), the rest at their own place
    assert mounts(argv) == [
        ("/nix/store", "/nix/store", True),
        ("/data/lab", "/data/lab", True),
        ("/base/outputs/up/out", "/base/outputs/up/out", True),
        ("/base/.work/j.1", "/base/.work/j.1", True),
        ("/base/.work/j.1/out", "/base/.work/j.1/out", False),
    ]
    # exactly the job's environment, then its argv
    tail = argv[argv.index(IMAGE) :]
    assert tail == [
        IMAGE,
        "/usr/bin/env",
        "-i",
        "PATH=/data/lab/host-tools/h/bin",
        "REPX_JOB_ID=j",
        "/data/lab/jobs/j/bin/s",
        "/base/.work/j.1/out",
        "in.json",
        "p.json",
    ]
    assert "--interactive" not in argv and "--user" not in " ".join(argv)


def test_limits_are_the_callers_capped_for_podman():
    argv = job(Engine(RuntimeKind.PODMAN, "podman", IMAGE))
    limits = dict(a.removeprefix("--ulimit=").split("=") for a in argv if a.startswith("--ulimit="))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits["nofile"] == f"{soft}:{hard}".replace(str(resource.RLIM_INFINITY), "-1")
    nproc = [int(v) for v in limits["nproc"].split(":")]
    assert all(0 <= v <= podman.MAX_LIMITS["nproc"] for v in nproc)


def test_a_store_copy_is_bound_at_nix_store_and_runc_chosen():
    eng = Engine(RuntimeKind.PODMAN, "podman", IMAGE, oci_runtime="/usr/sbin/runc", store="/l/s")
    argv = job(eng)
    assert argv[:4] == ["podman", "--runtime", "/usr/sbin/runc", "run"]
    bound = mounts(argv)
    assert bound[0] == ("/l/s", "/nix/store", True)
    # with a store copy, a lab in the host's store is bound on its own
    assert ("/nix/store/x-lab", "/nix/store/x-lab", True) in bound


def test_docker_runs_jobs_as_the_caller():
    argv = job(Engine(RuntimeKind.DOCKER, "docker", IMAGE))
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert "--log-driver=none" in argv


def test_interactive_keeps_stdin():
    assert "--interactive" in job(Engine(RuntimeKind.PODMAN, "podman", IMAGE), interactive=True)


def test_container_names_and_their_removal():
    assert containers.container_name("/b/.work/abc-s+t.0f1e") == "repx-abc-s_t.0f1e"
    podman_rm = containers.remove_argv(Engine(RuntimeKind.PODMAN, "podman", IMAGE), "/w/j.1")
    assert podman_rm == ["podman", "rm", "--force", "--time=0", "repx-j.1"]
    docker_rm = containers.remove_argv(Engine(RuntimeKind.DOCKER, "docker", IMAGE), "/w/j.1")
    assert docker_rm == ["docker", "rm", "--force", "repx-j.1"]


def test_only_container_runtimes_have_a_cleanup(tmp_path):
    bwrap = Runtime(kind=RuntimeKind.BWRAP, path="/p", outputs="/o", bwrap="/usr/bin/bwrap")
    assert bwrap.cleanup_argv(tmp_path / "j.1") == []
    pod = Runtime(kind=RuntimeKind.PODMAN, path="/p", outputs="/o", engine="podman", image_id=IMAGE)
    assert pod.cleanup_argv(tmp_path / "j.1")[-1] == "repx-j.1"


def test_the_container_of_an_engine_command_is_found_again():
    eng = Engine(RuntimeKind.PODMAN, "/usr/bin/podman", IMAGE, oci_runtime="/usr/sbin/runc")
    argv = job(eng, name=containers.container_name("/b/.work/j.1"))
    assert containers.removal_for(argv) == [
        "/usr/bin/podman",
        "--runtime",
        "/usr/sbin/runc",
        "rm",
        "--force",
        "--time=0",
        "repx-j.1",
    ]
    docker = job(Engine(RuntimeKind.DOCKER, "docker", IMAGE), name="repx-j.2")
    assert containers.removal_for(docker) == ["docker", "rm", "--force", "repx-j.2"]
    # anything else: a job's own process, an engine command of someone else's
    assert containers.removal_for(["/lab/jobs/j/bin/s", "out", "in", "p"]) is None
    assert containers.removal_for(["podman", "run", "--name=web", "img"]) is None
    assert containers.removal_for([]) is None
