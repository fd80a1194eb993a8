"""SSH targets: a sweep on an SSH host against the same sweep run here, and the bytes a
one-parameter change sends.

    .venv/bin/python bench/bench_ssh.py [--jobs 1000] [-j 2] [--json]

Needs root (network namespaces), sshd, busybox and rsync. The SSH "host" is a real sshd on
loopback in a network namespace of its own with a tmpfs over /nix (no Nix store, no repx),
reached through ``ProxyCommand ip netns exec … busybox nc`` (tests/integration/sshhosts.py;
one fresh connection costs ~0.4 s there). The lab: ``--jobs - 1`` independent jobs and one
job gathering them (tests/labfactory.py; each job a /bin/sh script of the lab's static
busybox under bwrap: as trivial as a job gets, so this measures overhead).

Measured, each on a fresh output store:
- locally: ``repx run -j J`` — time to the first committed job, total;
- SSH target: ``repx run --target far --wait -j J`` — the first sync (the lab is new there),
  time to the first committed job (seen in the host's output store, here the same file
  system), total (sync included), and the ratio of total to the local total;
- a second revision with one job's parameter changed: bytes rsync sent for it (the lab's
  new revision shares every other file with the first one there).

Target (issue 13): SSH total <= 1.3x local + one sync; a one-parameter change sends only
the changed job files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from bench_run import fan_in  # noqa: E402 (the same lab as the local bench)
from sshhosts import start_hosts, stop_hosts, stop_runners  # noqa: E402

from labfactory import refresh_integrity, write_lab  # noqa: E402

REPX = [sys.executable, "-m", "repx"]


def first_output(outputs: Path, stop: threading.Event, found: list[float]) -> None:
    """Record when ``outputs`` first holds a committed job (polled every 5 ms)."""
    while not stop.is_set():
        try:
            if any(True for _ in os.scandir(outputs)):
                found.append(time.perf_counter())
                return
        except FileNotFoundError:
            pass
        time.sleep(0.005)


def timed_run(argv: list[str], outputs: Path, env: dict[str, str]) -> dict[str, object]:
    """Run ``argv`` (``--json``): seconds to the first committed job, total, its events."""
    stop = threading.Event()
    found: list[float] = []
    watcher = threading.Thread(target=first_output, args=(outputs, stop, found), daemon=True)
    start = time.perf_counter()
    watcher.start()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    total = time.perf_counter() - start
    stop.set()
    watcher.join()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {
        "first_job_s": round(found[0] - start, 3) if found else None,
        "total_s": round(total, 3),
        "events": events,
    }


def synced(events: list[dict]) -> dict:
    return next(e for e in events if e.get("event") == "synced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the lab")
    parser.add_argument("-j", type=int, default=2, help="concurrency, here and there")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="repx-bench-ssh-") as tmp_name:
        tmp = Path(tmp_name)
        lab = write_lab(tmp / "lab", fan_in(args.jobs - 1), static_tools=True).root
        hosts = start_hosts(tmp / "hosts", {"far": True})
        root = hosts.hosts["far"].root / "bench"
        try:
            conf = tmp / "conf"
            conf.mkdir()
            (conf / "config.toml").write_text(hosts.target_toml("far", "far", root))
            env = {**os.environ, "REPX_CONFIG_DIR": str(conf)}
            jobs = ["-j", str(args.j), "--json"]

            local = timed_run(
                [*REPX, "run", "--lab", str(lab), "--base", str(tmp / "here"), *jobs],
                tmp / "here" / "outputs",
                env,
            )
            remote = timed_run(
                [*REPX, "run", "--lab", str(lab), "--target", "far", "--wait", *jobs],
                root / "base" / "outputs",
                env,
            )
            first_sync = synced(remote["events"])  # type: ignore[arg-type]

            # one parameter of one job changes: a new revision, one job to run
            job = sorted((lab / "jobs").iterdir())[0]
            (job / "parameters.json").write_text('{"seed":1000000}')
            refresh_integrity(lab)
            changed_bytes = sum(
                p.stat().st_size
                for p in [*job.rglob("*"), lab / "lab" / "lab-metadata.json"]
                if p.is_file()
            )
            change = timed_run(
                [*REPX, "run", "--lab", str(lab), "--target", "far", "--wait", *jobs],
                root / "base" / "outputs",
                env,
            )
            second_sync = synced(change["events"])  # type: ignore[arg-type]
        finally:
            stop_runners(root)
            stop_hosts(hosts)

    ratio = remote["total_s"] / local["total_s"]  # type: ignore[operator]
    without_sync = (remote["total_s"] - first_sync["seconds"]) / local["total_s"]  # type: ignore[operator]
    figures = {
        "jobs": args.jobs,
        "concurrency": args.j,
        "local_first_job_s": local["first_job_s"],
        "local_total_s": local["total_s"],
        "ssh_first_job_s": remote["first_job_s"],
        "ssh_total_s": remote["total_s"],
        "ssh_first_sync_s": first_sync["seconds"],
        "ssh_first_sync_bytes": first_sync["bytes_sent"],
        "ssh_over_local": round(ratio, 2),
        "ssh_minus_sync_over_local": round(without_sync, 2),
        "change_sync_bytes": second_sync["bytes_sent"],
        "change_sync_files": second_sync["files"],
        "change_sync_s": second_sync["seconds"],
        "changed_job_files_bytes": changed_bytes,
        "change_total_s": change["total_s"],
    }
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"{args.jobs} trivial jobs, -j {args.j}, SSH host without Nix over loopback")
    print(f"  local        first job {local['first_job_s']} s, total {local['total_s']} s")
    print(
        f"  SSH target   first job {remote['first_job_s']} s, total {remote['total_s']} s"
        f" (first sync {first_sync['seconds']} s, {first_sync['bytes_sent']} bytes)"
    )
    print(f"  ratio        {ratio:.2f}x ({without_sync:.2f}x without the first sync)")
    print(
        f"  one-parameter change: {second_sync['bytes_sent']} bytes sent"
        f" ({second_sync['files']} files; the changed job's files and the lab metadata:"
        f" {changed_bytes} bytes), run {change['total_s']} s"
    )


if __name__ == "__main__":
    main()
