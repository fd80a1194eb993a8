"""``--runtime docker``: jobs run in the lab's image through a real docker daemon.

The daemon is this module's own (``dockerd`` with its own data root, exec root, pid file
and socket under a temporary directory, reached through ``DOCKER_HOST``), started with
``--bridge=none --iptables=false --ip6tables=false``: jobs run with ``--network=none``, so
it needs no bridge and no firewall rules. It is stopped by its pid at the end, and the
host's firewall rules and network links are compared with what they were before: any
rule or link it added anyway is removed (the rules restored from ``iptables-save``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runlab import build_lab, repx
from test_run_podman import _outputs, _result

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
]

#: How long the daemon may take to answer (0.6 s measured; a bound, not an assertion).
READY_SECONDS = 60


def _firewall() -> dict[str, str]:
    """The host's rules (without iptables-save's timestamps) and network links."""
    state = {}
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat"):
            proc = subprocess.run(
                [tool, "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            state[f"{tool}-{table}"] = proc.stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False)
    state["links"] = "\n".join(
        sorted(line.split(":")[1].strip() for line in links.stdout.splitlines())
    )
    return state


def _restore(before: dict[str, str], saved: dict[str, str]) -> None:
    """Undo what the daemon changed: rules from the iptables-save dump, added links."""
    after = _firewall()
    for tool in ("iptables", "ip6tables"):
        if any(after.get(f"{tool}-{t}") != before.get(f"{tool}-{t}") for t in ("filter", "nat")):
            subprocess.run(
                [f"{tool}-restore"], input=saved[tool], text=True, check=False, capture_output=True
            )
    for link in set(after["links"].split("\n")) - set(before["links"].split("\n")):
        subprocess.run(["ip", "link", "delete", link.split("@")[0]], check=False)


@pytest.fixture(scope="module")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("docker")
    saved = {
        tool: subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=False).stdout
        for tool in ("iptables", "ip6tables")
        if shutil.which(f"{tool}-save")
    }
    before = _firewall()
    sock = root / "docker.sock"
    env = {"DOCKER_HOST": f"unix://{sock}"}
    log = (root / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"),
            "--host", env["DOCKER_HOST"],
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            ping = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                env={**os.environ, **env},
                capture_output=True,
                check=False,
            )
            if ping.returncode == 0:
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield env
    finally:
        daemon.send_signal(signal.SIGTERM)  # it stops the containerd it started
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        _restore(before, saved)
        assert _firewall() == before
        shutil.rmtree(root / "data", ignore_errors=True)


def _loaded(env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        ["docker", "image", "ls", "--no-trunc", "--format", "{{.ID}}"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(set(proc.stdout.split()))


def test_outputs_are_byte_identical_to_bwrap(tmp_path: Path, docker_env: dict[str, str]) -> None:
    lab = build_lab("sweep")
    assert _loaded(docker_env) == []
    ran = {}
    for runtime in ("bwrap", "docker"):
        base = tmp_path / runtime
        proc = repx("run", "--lab", lab, "--base", base, "--runtime", runtime, env=docker_env)
        assert proc.returncode == 0, proc.stderr
        ran[runtime] = _outputs(base)
    assert ran["docker"] == ran["bwrap"]
    some = next(iter(ran["docker"]))
    assert _result(tmp_path / "docker", some)["runtime"] == "docker"
    (image_id,) = {
        json.loads(p.read_text())["id"] for p in lab.glob("store/*-repx-oci-image/repx-image.json")
    }
    assert _loaded(docker_env) == [image_id]
    # the outputs belong to the user who runs repx, as under bubblewrap
    out = next((tmp_path / "docker" / "outputs").glob("*/out"))
    assert out.stat().st_uid == os.getuid()


def test_a_daemon_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    lab = build_lab("sweep")
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}"}
    proc = repx("run", "--lab", lab, "--base", tmp_path / "b", "--runtime", "docker", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "docker" in lines[0] and "does not answer" in lines[0]
    assert not (tmp_path / "b" / "outputs").exists() or not any(
        (tmp_path / "b" / "outputs").iterdir()
    )
