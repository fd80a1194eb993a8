"""``--runtime podman``: jobs run in the lab's OCI image, with the outputs bubblewrap gives.

Real podman (CI installs it with tools/setup.sh) in a private storage and configuration
made for this module (``CONTAINERS_STORAGE_CONF``, ``CONTAINERS_CONF``: nothing of the
host's podman state is read or changed), real labs built by nix: the shell-only sweep
(``containerMode = "unified"``, the default, and ``"per-run"``), and a probe lab whose
jobs report what they can reach.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runlab import build_lab, repx, repx_argv
from test_nix_lib import FLAKE, Experiment, stage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


def _container_mode(mode: str) -> Callable[[Path], None]:
    def edit(flake: Path) -> None:
        lab_nix = flake / "nix" / "lab.nix"
        text = lab_nix.read_text()
        assert "inherit pkgs gitHash;" in text
        lab_nix.write_text(
            text.replace(
                "inherit pkgs gitHash;", f'inherit pkgs gitHash;\n  containerMode = "{mode}";'
            )
        )

    return edit


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a private podman: its own storage, run and temporary dirs."""
    root = tmp_path_factory.mktemp("podman")
    # No network configuration of its own is needed: jobs run with --network=none.
    storage = root / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    conf = root / "containers.conf"
    # No [engine] runtime: repx must find out by itself that crun fails here.
    conf.write_text(f'[engine]\ntmp_dir = "{root}/tmp"\nevents_logger = "file"\n')
    env = {"CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(conf)}
    yield env
    _forget(env)


def _forget(env: dict[str, str]) -> None:
    """Remove every container and image of a private storage (its directory goes with
    the test's temporary files); not `podman system reset`, which also resets the host's
    network configuration."""
    for args in (("rm", "--all", "--force", "--time=0"), ("rmi", "--all", "--force")):
        subprocess.run(
            ["podman", *args], env={**os.environ, **env}, capture_output=True, check=False
        )


def _podman(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        ["podman", *args], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return proc.stdout


def _loads(env: dict[str, str]) -> int:
    """How many images this podman loaded from an archive or directory so far."""
    events = _podman(env, "events", "--stream=false", "--filter", "type=image")
    return sum("loadfromarchive" in line for line in events.splitlines())


def _tree(path: Path) -> dict[str, bytes]:
    return {
        os.fspath(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _outputs(base: Path) -> dict[str, dict[str, bytes]]:
    """Per job: every file of out/ and the logs, byte for byte."""
    jobs: dict[str, dict[str, bytes]] = {}
    for job in sorted((base / "outputs").iterdir()):
        files = {f"out/{k}": v for k, v in _tree(job / "out").items()}
        for name in ("stdout.log", "stderr.log", "SUCCESS", "FAIL"):
            marker = job / "repx" / name
            if marker.exists():
                files[f"repx/{name}"] = marker.read_bytes()
        jobs[job.name] = files
    return jobs


def _result(base: Path, job: str) -> dict[str, object]:
    return json.loads((base / "outputs" / job / "repx" / "result.json").read_text())


def test_outputs_are_byte_identical_to_bwrap_and_the_image_is_loaded_once(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    lab = build_lab("sweep")
    meta = json.loads((lab / "lab" / "lab-metadata.json").read_text())
    assert meta["container_mode"] == "unified"
    assert _loads(podman_env) == 0
    ran = {}
    for runtime in ("bwrap", "podman"):
        base = tmp_path / runtime
        proc = repx("run", "--lab", lab, "--base", base, "--runtime", runtime, env=podman_env)
        assert proc.returncode == 0, proc.stderr
        ran[runtime] = _outputs(base)
    assert ran["podman"] == ran["bwrap"]
    assert len(ran["podman"]) == meta["job_count"]
    some = next(iter(ran["podman"]))
    assert _result(tmp_path / "podman", some)["runtime"] == "podman"
    assert _loads(podman_env) == 1
    # A second run (a new base: every job runs again) finds the image by id: no reload.
    again = repx(
        "run", "--lab", lab, "--base", tmp_path / "again", "--runtime", "podman", env=podman_env
    )
    assert again.returncode == 0, again.stderr
    assert _outputs(tmp_path / "again") == ran["bwrap"]
    assert _loads(podman_env) == 1
    (image_id,) = {
        json.loads(p.read_text())["id"] for p in lab.glob("store/*-repx-oci-image/repx-image.json")
    }
    assert _podman(
        podman_env, "image", "inspect", "--format", "{{.Id}}", image_id
    ).strip() == image_id.removeprefix("sha256:")


# -- what a job can reach ----------------------------------------------------------------

PROBE = r"""o="${outputs."out.txt"}"
{
  echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
  if (exec 3<>"/dev/tcp/127.0.0.1/${toString parameters.port}") 2>/dev/null; then
    echo "network: connected"
  else
    echo "network: unreachable"
  fi
  for target in /nix/store/repx-probe "$(dirname "$3")/probe" /probe; do
    if touch "$target" 2>/dev/null; then echo "write $target: yes"; else echo "write: refused"; fi
  done
  echo "environment: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
  echo "tmp: $(echo x > /tmp/x && cat /tmp/x)"
} > "$o"
"""
BOOM = 'echo "boom: failing on purpose" >&2\nexit 3'


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A TCP port listening on the host's loopback (a job that reaches it is connected)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def probe_lab(
    tmp_path_factory: pytest.TempPathFactory, repx_flake_copy: Path, listener: int
) -> Path:
    exp = Experiment(tmp_path_factory.mktemp("probe") / "exp", repx_flake_copy)
    exp.write(
        "flake.nix",
        FLAKE,
    )
    exp.write("runs.nix", "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write(
        "run.nix",
        f'{{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = {{ port = [ {listener} ]; }}; }}',
    )
    exp.write(
        "pipe.nix",
        "{ repx }: repx.mkPipe { probe = repx.callStage ./probe.nix [ ];"
        " boom = repx.callStage ./boom.nix [ ]; }",
    )
    exp.write("probe.nix", stage("probe", PROBE, params={"port": 0}))
    exp.write("boom.nix", stage("boom", BOOM, outputs={}))
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr
    return (exp.root / "result").resolve()


def _run_probe(lab: Path, base: Path, runtime: str, env: dict[str, str]) -> dict[str, str]:
    proc = repx(
        "run", "--lab", lab, "--base", base, "--runtime", runtime, "--continue-on-failure", env=env
    )
    assert proc.returncode == 1, proc.stderr  # boom fails
    (probe,) = base.glob("outputs/*-probe/out/out.txt")
    return dict(line.split(": ", 1) for line in probe.read_text().splitlines())


def test_a_job_reaches_no_network_and_writes_only_out(
    tmp_path: Path, probe_lab: Path, podman_env: dict[str, str]
) -> None:
    seen = {
        rt: _run_probe(probe_lab, tmp_path / rt, rt, podman_env)
        for rt in ("podman", "bwrap", "native")
    }
    # the probe can tell: without a sandbox the host's listener answers
    assert seen["native"]["network"] == "connected"
    assert seen["podman"]["network"] == "unreachable"
    assert seen["podman"]["interfaces"].split() == ["lo"]
    assert seen["podman"]["write"] == "refused"
    assert not (probe_lab / "probe").exists()
    assert seen["podman"]["tmp"] == "x"
    assert seen["podman"] == seen["bwrap"]


def test_a_failing_job_is_recorded_as_under_bwrap(
    tmp_path: Path, probe_lab: Path, podman_env: dict[str, str]
) -> None:
    for runtime in ("bwrap", "podman"):
        _run_probe(probe_lab, tmp_path / runtime, runtime, podman_env)
    (bwrap_job,) = (tmp_path / "bwrap").glob("outputs/*-boom")
    podman_job = tmp_path / "podman" / "outputs" / bwrap_job.name
    assert (podman_job / "repx" / "FAIL").exists()
    assert not (podman_job / "repx" / "SUCCESS").exists()
    result = _result(tmp_path / "podman", bwrap_job.name)
    assert (result["status"], result["reason"], result["exit_code"]) == (
        "failed",
        "exit status 3",
        3,
    )
    assert _outputs(tmp_path / "podman") == _outputs(tmp_path / "bwrap")


def test_a_lab_without_an_image_is_refused_in_one_line(
    podman_env: dict[str, str], tmp_path: Path
) -> None:
    lab = build_lab("sweep", edit=_container_mode("none"), variant="none")
    proc = repx("run", "--lab", lab, "--base", tmp_path, "--runtime", "podman", env=podman_env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'containerMode = "unified"' in lines[0]
    assert "Traceback" not in proc.stderr


def test_per_run_images_give_the_same_outputs(tmp_path: Path, podman_env: dict[str, str]) -> None:
    lab = build_lab("sweep", edit=_container_mode("per-run"), variant="per-run")
    meta = json.loads((lab / "lab" / "lab-metadata.json").read_text())
    assert meta["container_mode"] == "per-run"
    assert set(meta["images"]) == {"simulation", "report"}
    ran = {}
    for runtime in ("bwrap", "podman"):
        base = tmp_path / runtime
        proc = repx("run", "--lab", lab, "--base", base, "--runtime", runtime, env=podman_env)
        assert proc.returncode == 0, proc.stderr
        ran[runtime] = _outputs(base)
    assert ran["podman"] == ran["bwrap"]
    assert len(ran["podman"]) == meta["job_count"]


def test_podman_missing_or_broken_is_one_line(tmp_path: Path, podman_env: dict[str, str]) -> None:
    lab = build_lab("sweep")
    empty = tmp_path / "bin"
    empty.mkdir()
    missing = repx(
        "run",
        "--lab",
        lab,
        "--base",
        tmp_path / "a",
        "--runtime",
        "podman",
        env={"PATH": str(empty)},
    )
    broken = repx(
        "run",
        "--lab",
        lab,
        "--base",
        tmp_path / "b",
        "--runtime",
        "podman",
        env={**podman_env, "CONTAINERS_STORAGE_CONF": str(tmp_path / "absent.conf")},
    )
    for proc, what in ((missing, "podman is not installed"), (broken, "does not answer")):
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert what in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "a" / "outputs").exists() or not any(
        (tmp_path / "a" / "outputs").iterdir()
    )


def test_a_target_chooses_podman_with_repx_names(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    """RepX's config.toml: ``default_execution_type = "podman"`` is the runtime."""
    lab = build_lab("sweep")
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        'submission_target = "box"\n[targets.box]\n'
        f'base_path = "{tmp_path / "base"}"\ndefault_execution_type = "podman"\n'
        '[targets.box.local]\nexecution_types = ["podman", "bwrap"]\n'
    )
    proc = repx("run", "--lab", lab, env={**podman_env, "REPX_CONFIG_DIR": str(config)})
    assert proc.returncode == 0, proc.stderr
    some = next((tmp_path / "base" / "outputs").iterdir())
    assert _result(tmp_path / "base", some.name)["runtime"] == "podman"


STUBBORN = 'trap "" TERM\necho started\nsleep 600'


def _containers(env: dict[str, str]) -> list[str]:
    return _podman(env, "ps", "--all", "--filter", "name=^repx-", "--format", "{{.Names}}").split()


def test_a_killed_job_leaves_no_container(
    tmp_path: Path, repx_flake_copy: Path, podman_env: dict[str, str]
) -> None:
    """A job that ignores SIGTERM: the second stop SIGKILLs podman, and repx removes the
    container that the killed client left running."""
    exp = Experiment(tmp_path / "exp", repx_flake_copy)
    exp.write("runs.nix", "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write("run.nix", '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { }; }')
    exp.write("pipe.nix", "{ repx }: repx.mkPipe { stubborn = repx.callStage ./s.nix [ ]; }")
    exp.write("s.nix", stage("stubborn", STUBBORN, outputs={}))
    assert exp.build().returncode == 0
    lab = (exp.root / "result").resolve()
    argv = repx_argv("run", "--lab", lab, "--base", tmp_path / "base", "--runtime", "podman")
    with subprocess.Popen(
        argv, env={**os.environ, **podman_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        work = tmp_path / "base" / ".work"

        def running() -> bool:
            logs = list(work.glob("*/repx/stdout.log"))
            return bool(logs) and b"started" in logs[0].read_bytes()

        deadline = time.monotonic() + 300  # a bound on a hang, not a timing assertion
        while not running():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        assert len(_containers(podman_env)) == 1
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # the second stop: SIGKILL
        _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert b"Traceback" not in err
    assert _containers(podman_env) == []


def test_debug_run_opens_the_job_s_container(tmp_path: Path, podman_env: dict[str, str]) -> None:
    lab = build_lab("sweep")
    base = tmp_path / "base"
    assert repx("run", "--lab", lab, "--base", base, env=podman_env).returncode == 0
    job = next(j for j in (base / "outputs").iterdir() if j.name.endswith("-aggregate")).name
    script = 'echo "out=$out"; echo "args=$#"; cat /etc/passwd | head -n 1; ls "$(dirname "$2")"'
    args = ("debug-run", job, "--lab", lab, "--base", base, "-c", script)
    seen = {rt: repx(*args, "--runtime", rt, env=podman_env) for rt in ("bwrap", "podman")}
    for rt, proc in seen.items():
        assert proc.returncode == 0, (rt, proc.stderr)
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("out=/") and lines[1] == "args=3", (rt, proc.stdout)
        assert lines[2].startswith("root:x:0:0:"), (rt, proc.stdout)
    # the same view: the same job files in the scratch attempt, beside a different $out
    assert seen["podman"].stdout.splitlines()[1:] == seen["bwrap"].stdout.splitlines()[1:]


def test_a_node_loads_the_images_into_its_own_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a SLURM task does first (repx.run.slurm_task.node_runtime): the engine found
    on the node's PATH, the lab's image loaded into that node's (empty) storage."""
    from repx.config import RuntimeKind  # noqa: PLC0415
    from repx.lab.loader import open_lab  # noqa: PLC0415
    from repx.oci import lab_images  # noqa: PLC0415
    from repx.run import containers  # noqa: PLC0415

    lab = build_lab("sweep")
    images = tuple({i.id: i for i in lab_images(open_lab(lab)).values()}.values())
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path}/graph"\n'
        f'runroot = "{tmp_path}/run"\n'
    )
    env = {"CONTAINERS_STORAGE_CONF": str(storage)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        program, oci_runtime = containers.on_node(
            RuntimeKind.PODMAN, "/nonexistent/podman", "/nonexistent/runc", images
        )
        assert program == shutil.which("podman")
        assert oci_runtime == shutil.which("runc")
        (image,) = images
        assert _podman(env, "image", "inspect", "--format", "{{.Id}}", image.id).strip() == (
            image.id.removeprefix("sha256:")
        )
    finally:
        _forget(env)


@pytest.mark.slurm
def test_a_slurm_target_runs_jobs_in_podman(tmp_path: Path, podman_env: dict[str, str]) -> None:
    from slurm_cluster import SlurmCluster  # noqa: PLC0415

    lab = build_lab("sweep")
    local = repx("run", "--lab", lab, "--base", tmp_path / "local", "--runtime", "bwrap")
    assert local.returncode == 0, local.stderr
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        'default_target = "hpc"\n[targets.hpc]\nscheduler = "slurm"\n'
        f'base = "{tmp_path / "slurm"}"\nruntime = "podman"\n'
    )
    with SlurmCluster.session():
        proc = repx(
            "run", "--lab", lab, "--wait", env={**podman_env, "REPX_CONFIG_DIR": str(config)}
        )
    assert proc.returncode == 0, proc.stderr
    assert _outputs(tmp_path / "slurm") == _outputs(tmp_path / "local")
    some = next((tmp_path / "slurm" / "outputs").iterdir())
    assert _result(tmp_path / "slurm", some.name)["runtime"] == "podman"


def test_scatter_gather_jobs_run_their_pieces_in_the_image(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    """The scatter lab (one of its jobs fails on purpose): the same outputs, markers and
    logs, but for the output store's path that a failing piece's message names."""
    lab = build_lab("scatter")
    ran = {}
    for runtime in ("bwrap", "podman"):
        base = tmp_path / runtime
        proc = repx(
            "run", "--lab", lab, "--base", base, "--runtime", runtime, "--continue-on-failure",
            env=podman_env,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        ran[runtime] = {
            job: {k: v.replace(os.fsencode(base), b"BASE") for k, v in files.items()}
            for job, files in _outputs(base).items()
        }
    assert ran["podman"] == ran["bwrap"]
    assert any("repx/FAIL" in files for files in ran["podman"].values())


#: Stubborn until the test puts a flag in the (impurely) mounted directory.
STUBBORN_UNTIL = 'if [ -e "$FLAGS/go" ]; then exit 0; fi\ntrap "" TERM\necho started\nsleep 600'


def test_kill_9_of_repx_then_a_resume_ends_the_container(
    tmp_path: Path, repx_flake_copy: Path, podman_env: dict[str, str]
) -> None:
    """repx killed outright: podman's client survives (its own session) with the job's
    container. The next run ends the client (the lock's orphan) and removes the container
    it names before a new attempt starts: two attempts never overlap."""
    flags = tmp_path / "flags"
    flags.mkdir()
    exp = Experiment(tmp_path / "exp", repx_flake_copy)
    exp.write("runs.nix", "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write("run.nix", '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { }; }')
    exp.write("pipe.nix", "{ repx }: repx.mkPipe { stubborn = repx.callStage ./s.nix [ ]; }")
    script = STUBBORN_UNTIL.replace("$FLAGS", os.fspath(flags))
    exp.write("s.nix", stage("stubborn", script, outputs={}))
    assert exp.build().returncode == 0
    lab = (exp.root / "result").resolve()
    base = tmp_path / "base"
    argv = repx_argv(
        "run", "--lab", lab, "--base", base, "--runtime", "podman", "--mount-path", flags
    )
    with subprocess.Popen(
        argv, env={**os.environ, **podman_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as first:
        deadline = time.monotonic() + 300  # a bound on a hang, not a timing assertion
        while not any(b"started" in p.read_bytes() for p in base.glob(".work/*/repx/stdout.log")):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        first.kill()  # SIGKILL of repx alone
        first.communicate()
    (old,) = _containers(podman_env)
    (flags / "go").touch()
    resumed = repx(*argv[3:], env=podman_env)
    assert resumed.returncode == 0, resumed.stderr
    assert old not in _containers(podman_env)
    assert _containers(podman_env) == []
    (job,) = (base / "outputs").iterdir()
    assert (job / "repx" / "SUCCESS").exists()


@pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed")
def test_podman_s_crun_failing_here_falls_back_to_runc(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    """podman told to use crun (its default where installed), which fails on this kernel's
    cgroups (measured: setrlimit, then "cgroups in hybrid mode"): the run still works,
    through runc, without any configuration file changed."""
    conf = tmp_path / "containers.conf"
    conf.write_text(Path(podman_env["CONTAINERS_CONF"]).read_text() + 'runtime = "crun"\n')
    env = {**podman_env, "CONTAINERS_CONF": str(conf)}
    lab = build_lab("sweep")
    (image_id,) = {
        json.loads(p.read_text())["id"] for p in lab.glob("store/*-repx-oci-image/repx-image.json")
    }
    warm = repx("run", "--lab", lab, "--base", tmp_path / "warm", "--runtime", "podman", env=env)
    assert warm.returncode == 0, warm.stderr
    crun = subprocess.run(
        ["podman", "run", "--rm", "-v", "/nix/store:/nix/store:ro", image_id, "/bin/sh", "-c", ":"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    base = tmp_path / "base"
    proc = repx("run", "-v", "--lab", lab, "--base", base, "--runtime", "podman", env=env)
    assert proc.returncode == 0, proc.stderr
    if crun.returncode != 0:  # as on the machine these tests were written on
        assert "default OCI runtime fails here" in proc.stderr and "runc" in proc.stderr
    assert _outputs(base) == _outputs(tmp_path / "warm")
