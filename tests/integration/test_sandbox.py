"""Attacks from inside a job, under the real bwrap runtime, as root and as an unprivileged user.

One lab: a ``victim`` job, then an ``attack`` job that consumes the victim's output (so
it is visible, read-only) and tries to escape: remounts, writes to every host location
that matters, a unix socket and a TCP listener the test starts, host programs and files.
Each attempt prints ``DENIED <name>`` or ``ESCAPED <name>`` and leaves the denial on the
job's stderr; the test also checks from the outside that nothing was written or received.

Everything runs in a network namespace the test creates (``unshare --net``, loopback up):
the listeners live there, the job's own namespace is nested inside it. A static helper
compiled with gcc makes the unix-socket connect attempt (busybox nc cannot).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labfactory import RunSpec, StageSpec, write_lab

REPO = Path(__file__).resolve().parents[2]
#: the TCP listener's port, in the test's own (empty) network namespace
PORT = 4711

CONNECT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (argc != 3 || s < 0) return 2;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror(argv[1]); return 1; }
    if (write(s, argv[2], strlen(argv[2])) < 0) { perror("write"); return 1; }
    return 0;
}
"""

# Records every connection (unix and TCP) it gets in a log; started and stopped by pid.
LISTENER = r"""
import os, selectors, socket, sys
PORT = @PORT@
port_file, log, *sock_paths = sys.argv[1:]
unix = []
for path in sock_paths:
    u = socket.socket(socket.AF_UNIX); u.bind(path); os.chmod(path, 0o777); u.listen()
    unix.append(u)
t = socket.socket(); t.bind(("127.0.0.1", PORT)); t.listen()
with open(port_file, "w") as f: f.write("listening\n")
sel = selectors.DefaultSelector()
for s in (*unix, t): sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        with open(log, "a") as f: f.write(f"connection: {conn.recv(100)!r}\n")
        conn.close()
"""

# Runs as root in the test's network namespace: loopback up, the listener, repx, then
# the listener is stopped by its pid.
DRIVER = r"""
set -eu
ip link set lo up
"$PYTHON" -c "$LISTENER" "$PORT_FILE" "$LOG" "$SOCK" "$RUN_SOCK" & listener=$!
trap 'kill $listener; wait $listener 2>/dev/null || true' EXIT
while [ ! -e "$PORT_FILE" ]; do sleep 0.05; done
"$@"
"""

ATTACK = r"""
lab=${0%/jobs/*}
victim=$(sed -n 's/^ *"[^"]*": "\(.*\)",\{0,1\}$/\1/p' "$inputs" | head -n 1)
vdir=${victim%/*}
port=@PORT@
try() {
  name=$1; shift
  echo "== $name" >&2
  if "$@" >&2; then echo "ESCAPED $name"; else echo "DENIED $name"; fi
}
try remount-victim-rw sh -c "mount -o remount,bind,rw '$vdir' && echo pwned >> '$victim'"
try remount-root-rw sh -c 'mount -o remount,rw / && touch /repx-escape'
try new-mount sh -c "mount -t tmpfs none '$vdir'"
try nested-userns unshare -rm sh -c "mount -o remount,bind,rw '$vdir' && echo pwned >> '$victim'"
try write-victim-output sh -c "echo pwned >> '$victim'"
try write-lab touch "$lab/repx-escape"
try write-host-root touch /repx-escape
try write-home sh -c 'mkdir -p "$HOME" && touch "$HOME/repx-escape"'
try write-root-home touch /root/repx-escape
try write-host-tmp sh -c 'echo pwned >> @HOST_TMP@/marker'
try read-home ls /home
try read-root-home ls /root
try read-etc-passwd cat /etc/passwd
try run-usr-bin-python3 /usr/bin/python3 -c 'print(1)'
try see-munge-socket ls -l /run/munge/munge.socket.2
try unix-socket "$lab/store/bin/connect" @SOCK@ hello-unix
try unix-socket-in-run "$lab/store/bin/connect" @RUN_SOCK@ hello-unix
try tcp-loopback sh -c "echo hello-tcp | nc -w 2 127.0.0.1 $port"
try see-host-processes sh -c 'grep -ls "select[o]rs" /proc/[0-9]*/cmdline'
try chown-output chown 123:123 "$out"
try mknod-disk mknod "$out/disk" b 8 0
cat "$params" > "$out/result.json"
"""

#: every attack of ATTACK, in order
ATTACKS = (
    "remount-victim-rw",
    "remount-root-rw",
    "new-mount",
    "nested-userns",
    "write-victim-output",
    "write-lab",
    "write-host-root",
    "write-home",
    "write-root-home",
    "write-host-tmp",
    "read-home",
    "read-root-home",
    "read-etc-passwd",
    "run-usr-bin-python3",
    "see-munge-socket",
    "unix-socket",
    "unix-socket-in-run",
    "tcp-loopback",
    "see-host-processes",
    "chown-output",
    "mknod-disk",
)


@dataclass(frozen=True)
class Scene:
    """The directories of one attack: all readable by the unprivileged user."""

    root: Path
    lab: Path
    base: Path
    host_tmp: Path
    sock: Path
    #: a listener where host services put theirs (the old sandbox showed the host's /run)
    run_sock: Path
    port_file: Path
    log: Path


def _require() -> None:
    for program in ("bwrap", "busybox", "gcc", "unshare", "ip", "setpriv"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is needed")
    if os.geteuid() != 0:
        pytest.skip("needs root (to create the network namespace and to drop to nobody)")


@pytest.fixture
def scene() -> Iterator[Scene]:
    _require()
    root = Path(tempfile.mkdtemp(prefix="repx-sandbox-"))
    host_tmp = Path(tempfile.mkdtemp(prefix="repx-sandbox-host-"))
    run_sock = Path("/run") / f"{host_tmp.name}.sock"
    try:
        root.chmod(0o755)
        host_tmp.chmod(0o777)
        (host_tmp / "marker").write_text("host\n")
        (host_tmp / "marker").chmod(0o666)
        lab = root / "lab"
        helper = lab / "store" / "bin" / "connect"
        helper.parent.mkdir(parents=True)
        source = root / "connect.c"
        source.write_text(CONNECT_C)
        subprocess.run(["gcc", "-static", "-O1", "-o", helper, source], check=True)
        yield Scene(
            root=root,
            lab=lab,
            base=root / "base",
            host_tmp=host_tmp,
            sock=host_tmp / "listener.sock",
            run_sock=run_sock,
            port_file=host_tmp / "port",
            log=host_tmp / "connections.log",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(host_tmp, ignore_errors=True)
        run_sock.unlink(missing_ok=True)


def _attack_lab(scene: Scene) -> None:
    script = (
        ATTACK.replace("@PORT@", str(PORT))
        .replace("@HOST_TMP@", str(scene.host_tmp))
        .replace("@SOCK@", str(scene.sock))
        .replace("@RUN_SOCK@", str(scene.run_sock))
    )
    runs = (
        RunSpec(
            name="attack",
            stages=(StageSpec("victim"), StageSpec("attack", after=("victim",), script=script)),
        ),
    )
    write_lab(scene.lab, runs, static_tools=True)


def _with_listener(
    scene: Scene, argv: list[str], extra_env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``argv`` in a new network namespace (loopback up) beside the test's listener."""
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "LISTENER": LISTENER.replace("@PORT@", str(PORT)),
        "SOCK": str(scene.sock),
        "RUN_SOCK": str(scene.run_sock),
        "PORT_FILE": str(scene.port_file),
        "LOG": str(scene.log),
        **extra_env,
    }
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", DRIVER, "driver", *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )


def _run(
    scene: Scene, *repx_args: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``repx run`` (as ``user``) inside a network namespace with the listener."""
    config = scene.root / "config"
    config.mkdir(exist_ok=True)
    repx = [sys.executable, "-m", "repx", "run", "--lab", str(scene.lab), "--base", str(scene.base)]
    argv = [*repx, *repx_args]
    if user is not None:
        scene.base.mkdir(exist_ok=True)
        shutil.chown(scene.base, user)
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
    env = {
        "REPX_CONFIG_DIR": str(config),
        "PYTHONPATH": str(REPO / "src"),
        "HOME": "/nonexistent" if user else os.environ.get("HOME", "/root"),
    }
    return _with_listener(scene, argv, env, timeout=120)


def _job(scene: Scene, stage: str) -> Path:
    (found,) = [p for p in (scene.base / "outputs").iterdir() if p.name.endswith(f"-{stage}")]
    return found


@pytest.mark.parametrize("user", [None, "nobody"], ids=["root", "nobody"])
def test_a_job_cannot_escape(scene, user):
    _attack_lab(scene)
    result = _run(scene, user=user)
    assert result.returncode == 0, result.stderr
    attack = _job(scene, "attack")
    report = (attack / "repx" / "stdout.log").read_text().split("\n")
    stderr = (attack / "repx" / "stderr.log").read_text()
    verdicts = dict(line.split(" ", 1)[::-1] for line in report if line)
    assert verdicts == dict.fromkeys(ATTACKS, "DENIED"), stderr
    # the denials, as the job saw them
    for message in (
        "Read-only file system",
        "No such file or directory",
        "Operation not permitted",
        "can't connect to remote host",
    ):
        assert message in stderr, stderr
    assert "permission denied" in stderr.lower()
    # and from the outside: nothing written, nothing received
    victim = _job(scene, "victim")
    assert "pwned" not in (victim / "out" / "result.json").read_text()
    assert (scene.host_tmp / "marker").read_text() == "host\n"
    assert not scene.log.exists() or scene.log.read_text() == ""
    for path in (Path("/repx-escape"), Path("/root/repx-escape"), scene.lab / "repx-escape"):
        assert not path.exists()
    results = [json.loads((j / "repx" / "result.json").read_text()) for j in (victim, attack)]
    assert [(r["runtime"], r["impure"]) for r in results] == [("bwrap", [])] * 2


def test_the_probes_work_outside_the_sandbox(scene):
    """The attack tools do reach the listeners when not sandboxed (the test can fail)."""
    helper = scene.lab / "store" / "bin" / "connect"
    probe = f'"{helper}" "$SOCK" hello-unix && "{helper}" "$RUN_SOCK" hello-run && echo hello-tcp | busybox nc -w 2 127.0.0.1 {PORT}'
    env_run = _with_listener(scene, ["sh", "-c", probe], {}, timeout=60)
    assert env_run.returncode == 0, env_run.stderr
    assert scene.log.read_text().count("connection") == 3


def test_mount_paths_are_visible_read_only_and_recorded(scene):
    data = scene.root / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host\n")
    script = (
        f'cat "{data}/input.txt" > "$out/result.json"\n'
        f'if touch "{data}/new" 2>/dev/null; then echo WRITABLE; fi\n'
        "if [ -e /usr/lib ]; then echo USR-VISIBLE; fi\n"
    )
    runs = (RunSpec(name="impure", stages=(StageSpec("reader", script=script),)),)
    write_lab(scene.lab, runs, static_tools=True)
    result = _run(scene, "--mount-path", str(data))
    assert result.returncode == 0, result.stderr
    assert "NOT reproducible" in result.stderr
    job = _job(scene, "reader")
    assert (job / "out" / "result.json").read_text() == "from the host\n"
    assert (job / "repx" / "stdout.log").read_text() == ""
    assert not (data / "new").exists()
    assert json.loads((job / "repx" / "result.json").read_text())["impure"] == [str(data)]

    # ... and the inspection commands say so
    def inspect(*args: str) -> subprocess.CompletedProcess[str]:
        where = ["--lab", str(scene.lab), "--base", str(scene.base)]
        argv = [sys.executable, "-m", "repx", *args, *where]
        return subprocess.run(argv, check=False, capture_output=True, text=True)

    status = inspect("status")
    assert f"saw host paths ({data})" in status.stderr and "NOT reproducible" in status.stderr
    [entry] = json.loads(inspect("status", "--json").stdout)["jobs"]
    assert entry["impure"] == [str(data)]
    shown = inspect("show", "job", job.name, "--json")
    assert json.loads(shown.stdout)["attempt"]["impure"] == [str(data)], shown.stderr


def test_mount_host_paths_shows_the_host_read_only_and_is_recorded(scene):
    script = (
        "/usr/bin/env true && echo ENV-RAN\n"
        "test -d /usr/bin && echo USR-VISIBLE\n"
        "if touch /usr/repx-escape 2>/dev/null; then echo WRITABLE; fi\n"
        'cat "$params" > "$out/result.json"\n'
    )
    runs = (RunSpec(name="impure", stages=(StageSpec("host", script=script),)),)
    write_lab(scene.lab, runs, static_tools=True)
    config = scene.root / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        f'default_target = "t"\n[targets.t]\nbase = "{scene.base}"\nmount_host_paths = true\n'
    )
    result = _run(scene)
    assert result.returncode == 0, result.stderr
    assert "NOT reproducible" in result.stderr and "whole file system" in result.stderr
    job = _job(scene, "host")
    assert (job / "repx" / "stdout.log").read_text() == "ENV-RAN\nUSR-VISIBLE\n"
    assert not Path("/usr/repx-escape").exists()
    assert json.loads((job / "repx" / "result.json").read_text())["impure"] == ["/"]


def test_a_lab_whose_shell_needs_the_host_is_refused_with_the_reason(tmp_path):
    _require()
    lab = write_lab(tmp_path / "lab").root  # host-tools: links to the host's /usr/bin
    base = tmp_path / "base"
    argv = [sys.executable, "-m", "repx", "run", "--lab", str(lab), "--base", str(base)]
    env = dict(os.environ, REPX_CONFIG_DIR=str(tmp_path))
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 2
    assert "does not run in the hermetic sandbox" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    impure = subprocess.run(
        [*argv, "--mount-host-paths"], capture_output=True, text=True, check=False, env=env
    )
    assert impure.returncode == 0, impure.stderr
    assert "NOT reproducible" in impure.stderr
