"""SSH "hosts" for tests: real sshd processes on loopback inside network namespaces.

Each host is a network namespace of its own (created here, deleted at the end) whose sshd
listens on 127.0.0.1 there; the client reaches it through ``ProxyCommand ip netns exec NS
busybox nc``. A host ``nonix`` also runs in a mount namespace with a tmpfs over ``/nix``:
no Nix store, no repx. Keys are generated per session; every process is stopped by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

_PORT = 2222


@dataclass
class Host:
    """One sshd in a namespace."""

    name: str
    namespace: str
    process: subprocess.Popen[bytes]
    root: Path


@dataclass
class Hosts:
    """The hosts and the ssh configuration that reaches them."""

    ssh_config: Path
    hosts: dict[str, Host]
    #: a directory that is a 2 MiB tmpfs on the hosts without /nix (a full disk)
    small: Path | None = None
    #: the namespace of host "dead", where nothing listens
    dead: str = ""

    def target_toml(self, name: str, host: str, base_path: Path | str, extra: str = "") -> str:
        """A ``[targets.NAME]`` table for ``host``."""
        return (
            f'[targets.{name}]\naddress = "{host}"\nbase_path = "{base_path}"\n'
            f'ssh_options = ["-F", "{self.ssh_config}"]\n{extra}\n'
        )


def require_tools() -> None:
    """Skip unless sshd, ssh, ip and busybox are installed and we may create namespaces."""
    for tool in ("ssh", "ssh-keygen", "ip", "busybox", "unshare", "rsync"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("openssh-server is not installed")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")


def start_hosts(directory: Path, names: dict[str, bool]) -> Hosts:
    """Start one sshd per name (value: True for a host without /nix)."""
    require_tools()
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    hostkey = directory / "host_ed25519"
    for path in (key, hostkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    authorized = directory / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    # a key the hosts do not accept
    stranger = directory / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    small = directory / "small"
    small.mkdir()
    Path("/run/sshd").mkdir(exist_ok=True)
    hosts: dict[str, Host] = {}
    config_lines: list[str] = []
    dead = ""
    try:
        for name, nonix in names.items():
            namespace = f"repx-{name}-{os.getpid()}-{secrets.token_hex(3)}"
            subprocess.run(["ip", "netns", "add", namespace], check=True)
            subprocess.run(
                ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True
            )
            cfg = directory / f"sshd_{name}.conf"
            cfg.write_text(
                f"ListenAddress 127.0.0.1\nPort {_PORT}\nHostKey {hostkey}\n"
                f"PidFile {directory}/sshd_{name}.pid\nAuthorizedKeysFile {authorized}\n"
                "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin prohibit-password\nStrictModes no\n"
            )
            argv = ["ip", "netns", "exec", namespace]
            if nonix:
                argv += [
                    "unshare", "-m", "--propagation", "private", "sh", "-c",
                    'mount -t tmpfs tmpfs /nix && mount -t tmpfs -o size=2m tmpfs "$0"'
                    ' && exec "$@"', str(small),
                ]  # fmt: skip
            argv += ["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)]
            log = (directory / f"sshd_{name}.log").open("wb")
            process = subprocess.Popen(argv, stdout=log, stderr=log)
            root = directory / f"{name}-root"
            root.mkdir()
            hosts[name] = Host(name, namespace, process, root)
            config_lines += [
                f"Host {name}",
                f"  HostName {name}",
                "  User root",
                f"  IdentityFile {key}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {directory}/known_hosts",
                "  StrictHostKeyChecking no",
                "  LogLevel ERROR",
                f"  ProxyCommand ip netns exec {namespace} busybox nc 127.0.0.1 {_PORT}",
            ]
        first = next(iter(names))
        config_lines += [
            f"Host {first}-stranger",
            f"  HostName {first}",
            "  User root",
            f"  IdentityFile {stranger}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {directory}/known_hosts",
            "  StrictHostKeyChecking no",
            "  LogLevel ERROR",
            f"  ProxyCommand ip netns exec {hosts[first].namespace} busybox nc 127.0.0.1 {_PORT}",
        ]
        # a host that does not answer: a namespace where nothing listens
        dead = f"repx-dead-{os.getpid()}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", dead], check=True)
        subprocess.run(["ip", "netns", "exec", dead, "ip", "link", "set", "lo", "up"], check=True)
        config_lines += [
            "Host dead",
            "  User root",
            f"  IdentityFile {key}",
            f"  UserKnownHostsFile {directory}/known_hosts",
            "  StrictHostKeyChecking no",
            f"  ProxyCommand ip netns exec {dead} busybox nc 127.0.0.1 {_PORT}",
        ]
        ssh_config = directory / "ssh_config"
        ssh_config.write_text("\n".join(config_lines) + "\n")
        result = Hosts(ssh_config, hosts, small, dead)
        for name in names:
            _wait_ready(ssh_config, name, hosts[name])
        return result
    except BaseException:
        stop_hosts(Hosts(directory / "ssh_config", hosts, dead=dead))
        raise


def _wait_ready(ssh_config: Path, name: str, host: Host) -> None:
    for _ in range(100):
        if host.process.poll() is not None:
            pytest.fail(f"sshd of {name} exited with {host.process.returncode}")
        probe = subprocess.run(
            ["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", name, "true"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail(f"sshd of {name} does not answer")


def stop_runners(base_path: Path) -> None:
    """Stop the remote runners a test started there (by the pid each one recorded)."""
    for pid_file in base_path.glob("submissions/*/pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if (pid_file.parent / "finished.log").exists():
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def stop_hosts(hosts: Hosts) -> None:
    """Stop every sshd by pid and delete the namespaces."""
    for host in hosts.hosts.values():
        if host.process.poll() is None:
            host.process.terminate()
            try:
                host.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()
        subprocess.run(["ip", "netns", "delete", host.namespace], check=False)
    if hosts.dead:
        subprocess.run(["ip", "netns", "delete", hosts.dead], check=False)
