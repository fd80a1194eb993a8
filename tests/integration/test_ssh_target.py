"""SSH targets against real sshd processes on loopback in network namespaces.

Two hosts: ``h1`` (this machine's /nix visible) and ``nonix`` (a tmpfs over /nix: no Nix
store, no repx). Labs are hand-made (labfactory) with static host-tools, so the runner
and the jobs run from what the lab carries. Everything started here is stopped by pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshhosts import Hosts, start_hosts, stop_hosts, stop_runners

from labfactory import RunSpec, StageSpec, refresh_integrity, write_lab

REPX = [sys.executable, "-m", "repx"]
#: Seconds a test waits for a remote run to end (a bound, not a measurement).
_PATIENCE = 120


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    started = start_hosts(tmp_path_factory.mktemp("ssh"), {"h1": False, "nonix": True})
    try:
        yield started
    finally:
        for host in started.hosts.values():
            for base in host.root.iterdir():
                stop_runners(base)
        stop_hosts(started)


def _config(tmp_path: Path, hosts: Hosts, text: str) -> dict[str, str]:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "config.toml").write_text(text)
    return {**os.environ, "REPX_CONFIG_DIR": str(conf)}


def _repx(
    env: dict[str, str], *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REPX, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=300,
    )


def _lab(root: Path, n: int = 4, script: str | None = None) -> Path:
    runs = (
        RunSpec(
            "sweep",
            (
                StageSpec("sim", params=("x",), outputs=("result.txt",), script=script),
                StageSpec("sum", gather=("sim",), outputs=("total.txt",)),
            ),
            parameters={"x": list(range(n))},
        ),
    )
    return write_lab(root, runs, static_tools=True).root


def _host_root(hosts: Hosts, name: str, tmp_path: Path) -> Path:
    path = hosts.hosts[name].root / tmp_path.name
    path.mkdir()
    return path


def _wait_finished(base_path: Path) -> None:
    deadline = time.monotonic() + _PATIENCE
    while time.monotonic() < deadline:
        subs = list(base_path.glob("submissions/*"))
        if subs and all((s / "finished.log").exists() for s in subs):
            for sub in subs:
                assert "runner-failed" not in (sub / "finished.log").read_text(), (
                    sub / "runner.log"
                ).read_text()
            return
        time.sleep(0.2)
    pytest.fail(f"the remote run in {base_path} did not end")


@pytest.mark.parametrize("host", ["nonix", "h1"])
def test_run_status_log_pull(tmp_path, hosts, host):
    root = _host_root(hosts, host, tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", host, root))
    lab = _lab(tmp_path / "lab")

    started = _repx(env, "run", "--lab", lab, "--target", "far")
    assert started.returncode == 0, started.stderr
    assert "synced lab to target 'far'" in started.stderr
    assert "started on SSH target far" in started.stderr
    submission = started.stdout.strip().splitlines()[-1]
    assert (root / "submissions" / submission).is_dir()
    _wait_finished(root)
    assert not (root / ".incoming").exists() or not any((root / ".incoming").iterdir())

    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert {j["status"] for j in report["jobs"]} == {"succeeded"}, report
    assert len(report["jobs"]) == 5

    sim = next(j["id"] for j in report["jobs"] if j["stage"] == "sim")
    log = _repx(env, "log", "--lab", lab, "--target", "far", sim)
    assert log.returncode == 0, log.stderr

    out = _repx(env, "show", "output", "--lab", lab, "--target", "far", sim, "result.txt")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(
        (lab / "jobs" / sim / "parameters.json").read_text()
    )

    again = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert again.returncode == 0, again.stderr
    assert "0 succeeded, 5 already done" in again.stderr, again.stderr

    local = tmp_path / "local"
    pulled = _repx(env, "pull", "--lab", lab, "--target", "far", "--base", local)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 5 job(s)" in pulled.stderr
    for job in report["jobs"]:
        assert (local / "outputs" / job["id"] / "repx" / "SUCCESS").exists()
    # the local store reads them like its own: status from the local base says succeeded
    here = _repx(env, "status", "--lab", lab, "--base", local, "--json")
    assert here.returncode == 0, here.stderr
    assert {j["status"] for j in json.loads(here.stdout)["jobs"]} == {"succeeded"}
    assert "0 job(s)" in _repx(env, "pull", "--lab", lab, "--target", "far", "--base", local).stderr

    # the SSH target as the default one: pulled outputs land in ./repx-runs, where the
    # Python API (and every local reader) finds them
    env = _config(
        tmp_path, hosts, 'default_target = "far"\n' + hosts.target_toml("far", host, root)
    )
    work = tmp_path / "analysis"
    work.mkdir()
    pulled = _repx(env, "pull", "--lab", lab, cwd=work)
    assert pulled.returncode == 0, pulled.stderr
    assert (work / "repx-runs" / "outputs").is_dir()
    api = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, repx; lab = repx.Lab.open(sys.argv[1]);"
            " print(len(lab.jobs(status='succeeded')))",
            str(lab),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    assert api.returncode == 0, api.stderr
    assert api.stdout.strip() == "5"


def test_wait_follows_and_reports_failures(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    script = 'x=$(cat "$params"); case "$x" in *2*) echo boom >&2; exit 3;; esac; cat "$params" > "$out/result.txt"'
    lab = _lab(tmp_path / "lab", script=script)
    result = _repx(env, "run", "--lab", lab, "--target", "far", "--wait", "--continue-on-failure")
    assert result.returncode == 1, result.stderr
    assert "3 succeeded" in result.stderr and "1 failed" in result.stderr, result.stderr
    assert "boom" in result.stderr
    assert "blocked" in result.stderr


def test_changed_lab_sends_only_the_difference(tmp_path, hosts):
    from runlab import tree_digest  # noqa: PLC0415

    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    lab = _lab(tmp_path / "lab", n=200)
    first = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert first.returncode == 0, first.stderr
    sent_first = _sent(first.stderr)
    (old_id,) = [p.name for p in (root / "labs").iterdir()]
    before = tree_digest(lab)

    # one parameter of one job changes: a new lab revision (another lab id; a hand-made
    # lab keeps the job's id, which Nix would change: nothing reruns here)
    job = next(p for p in (lab / "jobs").iterdir())
    (job / "parameters.json").write_text('{"x":1000}')
    refresh_integrity(lab)
    second = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert second.returncode == 0, second.stderr
    sent_second = _sent(second.stderr)
    # the changed file and the new lab metadata's delta, not the 1,000 other entries
    assert sent_second < 16 * 1024 < sent_first, (sent_first, sent_second)
    (new_id,) = [p.name for p in (root / "labs").iterdir() if p.name != old_id]
    assert tree_digest(root / "labs" / new_id) == tree_digest(lab)
    assert tree_digest(root / "labs" / old_id) == before  # its hard links were not touched


def _sent(stderr: str) -> int:
    line = next(x for x in stderr.splitlines() if x.startswith("synced lab to target"))
    return int(line.split(" bytes sent")[0].rsplit(" ", 1)[-1])


def test_cancel_stops_the_remote_run(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root, "concurrency = 2"))
    lab = _lab(tmp_path / "lab", script='sleep 600; cat "$params" > "$out/result.txt"')
    started = _repx(env, "run", "--lab", lab, "--target", "far")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + _PATIENCE
    while not list(root.glob("base/.work/*/repx/stdout.log")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    states = [j["status"] for j in json.loads(status.stdout)["jobs"]]
    # two running, the two other simulations locked by the runner (queued), the sum waits
    assert sorted(states) == ["queued", "queued", "running", "running", "waiting"], states
    cancelled = _repx(env, "cancel", "--lab", lab, "--target", "far")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "stopped 1 run(s) on target 'far'" in cancelled.stderr
    finished = next(root.glob("submissions/*/finished.log")).read_text()
    assert "summary\t0\t" in finished
    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    states = [j["status"] for j in json.loads(status.stdout)["jobs"]]
    assert "running" not in states and "succeeded" not in states
    assert not list(root.glob("base/.work/*"))  # nothing left locked or half-done


def _wait_logs(root: Path, count: int) -> None:
    deadline = time.monotonic() + _PATIENCE
    while len(list(root.glob("base/.work/*/repx/stdout.log"))) < count:
        assert time.monotonic() < deadline, "the remote jobs did not start"
        time.sleep(0.1)


def test_cancel_with_selectors_stops_only_the_runs_running_them(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root, "concurrency = 2"))
    slow = 'sleep 600; cat "$params" > "$out/result.txt"'
    runs = tuple(
        RunSpec(
            name,
            (
                StageSpec("sim", params=("x",), outputs=("result.txt",), script=slow),
                StageSpec("sum", gather=("sim",), outputs=("total.txt",)),
            ),
            parameters={"x": values},
        )
        for name, values in (("a", [0, 1]), ("b", [10, 11]))
    )
    made = write_lab(tmp_path / "lab", runs, static_tools=True)
    lab = made.root
    subs = {}
    for run in ("a", "b"):  # two submissions, one runner each
        started = _repx(env, "run", "--lab", lab, "--target", "far", run)
        assert started.returncode == 0, started.stderr
        subs[run] = root / "submissions" / started.stdout.strip().splitlines()[-1]
    _wait_logs(root, 4)

    # a run's name: only the submission running it stops, the other one goes on
    cancelled = _repx(env, "cancel", "--lab", lab, "--target", "far", "b")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "stopped 1 run(s) on target 'far'" in cancelled.stderr, cancelled.stderr
    finished = (subs["b"] / "finished.log").read_text()
    assert finished.count("\tinterrupted\t") == 2 and "summary\t0\t" in finished, finished
    assert not (subs["a"] / "finished.log").exists()
    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    states = {j["id"]: j["status"] for j in json.loads(status.stdout)["jobs"]}
    assert [states[j] for j in made.stage_jobs["a", "sim"]] == ["running", "running"], states
    assert {states[j] for j in made.stage_jobs["b", "sim"]} == {"failed"}, states
    assert not [p for p in root.glob("base/.work/*") if p.name in made.run_jobs["b"]]

    # nothing runs b any more: nothing to stop
    again = _repx(env, "cancel", "--lab", lab, "--target", "far", "b")
    assert again.returncode == 0, again.stderr
    assert "nothing to cancel" in again.stderr, again.stderr
    assert not (subs["a"] / "finished.log").exists()

    # a job that is not started yet (the gather) names the submission that will run it
    (gather,) = made.stage_jobs["a", "sum"]
    cancelled = _repx(env, "cancel", "--lab", lab, "--target", "far", gather)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "stopped 1 run(s) on target 'far'" in cancelled.stderr, cancelled.stderr
    assert "summary\t0\t" in (subs["a"] / "finished.log").read_text()
    assert not list(root.glob("base/.work/*"))  # nothing left locked or half-done


def test_force_reruns_on_the_target_and_a_failed_rerun_keeps_the_success(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    lab = _lab(tmp_path / "lab", n=2)
    first = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert first.returncode == 0, first.stderr
    sim = sorted(p.name for p in (lab / "jobs").iterdir() if p.name.endswith("-sim"))[0]
    committed = root / "base" / "outputs" / sim
    before = json.loads((committed / "repx" / "result.json").read_text())

    forced = _repx(env, "run", "--lab", lab, "--target", "far", "--wait", "--force", sim)
    assert forced.returncode == 0, forced.stderr
    assert "1 succeeded" in forced.stderr, forced.stderr
    after = json.loads((committed / "repx" / "result.json").read_text())
    assert after["attempt"] != before["attempt"] and after["status"] == "succeeded"
    records = [
        json.loads(line)
        for line in (root / "base" / "completions.jsonl").read_text().splitlines()
        if json.loads(line)["job"] == sim
    ]
    assert [r["attempt"] for r in records] == [before["attempt"], after["attempt"]]

    # a forced attempt that fails leaves the success; it is kept in failed-rerun/
    script = next((lab / "jobs" / sim / "bin").iterdir())
    script.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    refresh_integrity(lab)
    failed = _repx(env, "run", "--lab", lab, "--target", "far", "--wait", "--force", sim)
    assert failed.returncode == 1, failed.stderr
    assert "1 failed" in failed.stderr and "boom" in failed.stderr, failed.stderr
    assert json.loads((committed / "repx" / "result.json").read_text()) == after
    assert (committed / "repx" / "SUCCESS").exists()
    assert (committed / "out" / "result.txt").exists()
    assert (committed / "failed-rerun" / "repx" / "FAIL").exists()
    assert "boom" in (committed / "failed-rerun" / "repx" / "stderr.log").read_text()
    lines = (root / "base" / "completions.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["job"] == sim for line in lines) == 2  # unrecorded
    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    assert {j["status"] for j in json.loads(status.stdout)["jobs"]} == {"succeeded"}
    assert not list(root.glob("base/.work/*"))


#: a report job: its inputs.json and the description of run sim, as it read them
_REPORT = r"""
cp "$inputs" "$out/inputs.json"
cp "$(sed -n 's/.*"metadata__sim": "\(.*\)".*/\1/p' "$inputs")" "$out/meta.json"
"""


def test_metadata_inputs_describe_the_run_as_a_local_run_does(tmp_path, hosts):
    """A soft run dependency with a failed job: the description carries the target's paths
    and each job's status when the consumer started, byte for byte a local run's."""
    failing = 'case "$(cat "$params")" in *2*) exit 3;; esac; cat "$params" > "$out/result.txt"'
    runs = (
        RunSpec(
            "sim",
            (StageSpec("sim", params=("x",), outputs=("result.txt",), script=failing),),
            parameters={"x": [0, 1.0, 2, "é"]},
        ),
        RunSpec(
            "report",
            (StageSpec("report", metadata_of=("sim",), outputs=("meta.json",), script=_REPORT),),
            depends_on={"sim": "soft"},
        ),
    )
    made = write_lab(tmp_path / "lab", runs, static_tools=True)
    lab = made.root
    (report,) = made.run_jobs["report"]
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    here = tmp_path / "here"
    local = _repx(env, "run", "--lab", lab, "--base", here, "--continue-on-failure")
    assert local.returncode == 1, local.stderr
    far = _repx(env, "run", "--lab", lab, "--target", "far", "--wait", "--continue-on-failure")
    assert far.returncode == 1, far.stderr
    assert "4 succeeded" in far.stderr and "1 failed" in far.stderr, far.stderr

    there = root / "base"
    meta = json.loads((there / "outputs" / report / "out" / "meta.json").read_text())
    assert meta["store_base"] == str(there)
    statuses = {j: meta["jobs"][j]["status"] for j in made.run_jobs["sim"]}
    assert sorted(statuses.values()) == ["failed", "succeeded", "succeeded", "succeeded"]
    for job in made.run_jobs["sim"]:
        assert meta["jobs"][job]["out_dir"] == str(there / "outputs" / job / "out")
    # (out/inputs.json names the attempt's directory, whose name differs: not compared)
    for rel in ("out/meta.json", "repx/inputs.json", "repx/run-metadata__sim.json"):
        mine = (here / "outputs" / report / rel).read_bytes()
        theirs = (there / "outputs" / report / rel).read_bytes()
        assert theirs == mine.replace(os.fsencode(here), os.fsencode(there)), rel
    # the committed inputs.json names the description at its committed place
    inputs = json.loads((there / "outputs" / report / "repx" / "inputs.json").read_text())
    assert inputs["metadata__sim"] == str(
        there / "outputs" / report / "repx" / "run-metadata__sim.json"
    )


def test_unreachable_refused_and_full_disk_are_one_line(tmp_path, hosts):
    lab = _lab(tmp_path / "lab")
    cases = {
        "dead": ("dead", "/tmp/nowhere", "cannot connect"),
        "stranger": ("h1-stranger", "/tmp/nowhere", "Permission denied"),
        "full": ("nonix", str(hosts.small / tmp_path.name), "disk full"),
    }
    text = "".join(hosts.target_toml(name, addr, base) for name, (addr, base, _) in cases.items())
    env = _config(tmp_path, hosts, text)
    big = lab / "jobs" / "big.bin"
    for name, (addr, _base, why) in cases.items():
        if name == "full":
            big.write_bytes(os.urandom(3 << 20))  # more than the 2 MiB of that disk
            refresh_integrity(lab)
        result = _repx(env, "run", "--lab", lab, "--target", name)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"target '{name}' ({addr})" in lines[0] and why in lines[0], lines[0]
    assert not Path("/tmp/nowhere").exists()
    # the full disk: nothing of the lab is there, no copy in progress was left behind
    listing = subprocess.run(
        ["ssh", "-F", str(hosts.ssh_config), "nonix", "find", cases["full"][1]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [p for p in listing if "/labs/" in p or "/.incoming/" in p], listing


@pytest.mark.slow
def test_example_lab_on_a_host_without_nix_is_byte_identical_to_local(tmp_path, hosts, built_lab):
    """The template's lab (built by Nix) on the host without /nix: the closure is synced
    into base_path, jobs run under the lab's own bwrap there; outputs equal a local run's."""
    from runlab import outputs_digest  # noqa: PLC0415

    lab = built_lab("default").result
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    local = _repx(env, "run", "--lab", lab, "--base", tmp_path / "here")
    assert local.returncode == 0, local.stderr
    far = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert far.returncode == 0, far.stderr
    assert "runtime bwrap" in far.stderr
    assert (root / "nix" / "store").is_dir() and any((root / "nix" / "store").iterdir())
    jobs = sorted(os.listdir(tmp_path / "here" / "outputs"))
    assert outputs_digest(root / "base", jobs) == outputs_digest(tmp_path / "here", jobs)
    # a second sync of the same lab sends next to nothing
    again = _repx(env, "run", "--lab", lab, "--target", "far", "--wait")
    assert again.returncode == 0, again.stderr
    assert _sent(again.stderr) < 64 * 1024, again.stderr


def _tokens(root: Path) -> dict[str, str]:
    """branch-N/step-S -> the token that piece wrote (unique per execution)."""
    return {
        f"{p.parent.parent.parent.name}/{p.parent.parent.name}": p.read_text()
        for p in sorted(root.glob("branch-*/step-*/out/token"))
    }


def _pieces_digest(job_dir: Path, base: Path) -> dict[str, bytes]:
    """Every file of a committed scatter-gather job but its logs, results and the tokens,
    the base directory's path replaced (worker_outs.json names it)."""
    found = {}
    for path in sorted(job_dir.rglob("*")):
        rel = path.relative_to(job_dir).as_posix()
        if path.is_dir() or path.name in {"token", "stdout.log", "stderr.log", "result.json"}:
            continue
        if path.name in {"scatter-task.json", "owner"}:  # the local orchestrator's; the lock
            continue
        data = path.read_bytes().replace(os.fsencode(base), b"<base>")
        # the gather's inputs.json names the attempt's directory: .work/<job>.<nonce> here
        found[rel] = re.sub(rb"(/\.work/[^/.]+)\.[0-9a-f]+/", rb"\1/", data)
    return found


@pytest.mark.slow
def test_scatter_gather_jobs_run_on_the_target_as_locally(tmp_path, hosts):
    """The scatter lab (built by Nix) on the host without /nix: the runner orchestrates
    the pieces; outputs, work items and worker__outs equal a local run's; a failed branch
    keeps the finished pieces, which the next attempt reuses."""
    from runlab import build_lab, outputs_digest, run_jobs  # noqa: PLC0415

    lab = build_lab("scatter")
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    here = tmp_path / "here"
    local = _repx(env, "run", "sums", "--lab", lab, "--base", here)
    assert local.returncode == 0, local.stderr
    far = _repx(env, "run", "sums", "--lab", lab, "--target", "far", "--wait")
    assert far.returncode == 0, far.stderr
    there = root / "base"
    jobs = sorted(run_jobs(lab, "sums"))
    assert outputs_digest(there, jobs) == outputs_digest(here, jobs)
    (squares,) = [j for j in jobs if j.endswith("-squares")]
    assert (there / "outputs" / squares / "out" / "sum.txt").read_text() == "30\n"
    assert _pieces_digest(there / "outputs" / squares, there) == _pieces_digest(
        here / "outputs" / squares, here
    )
    assert len(_tokens(there / "outputs" / squares)) == 8
    assert not (there / "pieces" / squares).exists()

    broken = _repx(env, "run", "broken", "--lab", lab, "--target", "far", "--wait")
    assert broken.returncode == 1, broken.stderr
    (failed,) = [j for j in run_jobs(lab, "broken") if j.endswith("-squares")]
    pieces = there / "pieces" / failed
    log = pieces / "branch-2" / "step-square" / "repx" / "stderr.log"
    assert f"branch-2/step-square failed (exit status 3); its log: {log}" in broken.stderr
    assert log.read_text() == "square: failing on 3 on purpose\n"
    # nothing new starts after the failure (cpus = 1: one piece at a time)
    before = _tokens(pieces)
    assert sorted(before) == [
        "branch-0/step-extract",
        "branch-0/step-square",
        "branch-1/step-extract",
        "branch-1/step-square",
        "branch-2/step-extract",
    ]
    assert not list((pieces / ".work").iterdir())
    scatter = (pieces / "scatter" / "repx" / "result.json").read_bytes()
    again = _repx(env, "run", "broken", "--lab", lab, "--target", "far", "--wait")
    assert again.returncode == 1, again.stderr
    after = _tokens(pieces)
    assert {k: after[k] for k in before} == before  # only the failed branch ran again
    assert (pieces / "scatter" / "repx" / "result.json").read_bytes() == scatter
    assert not list(root.glob("base/.work/*"))


def _slow_squares(flake: Path) -> None:
    """Each square takes 3 s: the job runs for 12 s at least (it is cancelled after 3)."""
    stage = flake / "nix" / "stages" / "squares.nix"
    text = stage.read_text()
    stage.write_text(
        text.replace('n=$(cat "${inputs.number}")', 'sleep 3; n=$(cat "${inputs.number}")')
    )


@pytest.mark.slow
def test_cancelled_scatter_gather_job_resumes_its_branches(tmp_path, hosts):
    from runlab import build_lab  # noqa: PLC0415

    lab = build_lab("scatter", edit=_slow_squares, variant="slow")
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    started = _repx(env, "run", "sums", "--lab", lab, "--target", "far")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + _PATIENCE
    while not list(root.glob("base/pieces/*/branch-0/step-square/repx/SUCCESS")):
        assert time.monotonic() < deadline, "the first branch did not end"
        time.sleep(0.1)
    cancelled = _repx(env, "cancel", "--lab", lab, "--target", "far")
    assert cancelled.returncode == 0, cancelled.stderr
    finished = next(root.glob("submissions/*/finished.log")).read_text()
    assert "-squares\tinterrupted\t" in finished, finished
    (pieces,) = root.glob("base/pieces/*")
    assert not list((pieces / ".work").iterdir())  # the stopped piece left nothing behind
    done = _tokens(pieces)
    assert "branch-0/step-square" in done, done

    resumed = _repx(env, "run", "sums", "--lab", lab, "--target", "far", "--wait")
    assert resumed.returncode == 0, resumed.stderr
    committed = root / "base" / "outputs" / pieces.name
    assert (committed / "out" / "sum.txt").read_text() == "30\n"
    tokens = _tokens(committed)
    assert {k: tokens[k] for k in done} == done and len(tokens) == 8
    assert not pieces.exists()


def test_log_follow_prints_until_the_job_ends(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root, "concurrency = 1"))
    script = 'echo first; sleep 3; echo second; cat "$params" > "$out/result.txt"'
    lab = _lab(tmp_path / "lab", n=1, script=script)
    started = _repx(env, "run", "--lab", lab, "--target", "far")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + _PATIENCE
    logs: list[Path] = []
    while not logs or "first" not in logs[0].read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
        logs = list(root.glob("base/.work/*-sim/repx/stdout.log"))
    job = logs[0].parts[-3]
    followed = _repx(env, "log", "--lab", lab, "--target", "far", "-f", job)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.split() == ["first", "second"]
    assert (root / "base" / "outputs" / job / "repx" / "SUCCESS").exists()
    _wait_finished(root)


def test_ctrl_c_stops_following_not_the_run(tmp_path, hosts):
    root = _host_root(hosts, "nonix", tmp_path)
    env = _config(tmp_path, hosts, hosts.target_toml("far", "nonix", root))
    lab = _lab(tmp_path / "lab", n=2, script='sleep 3; cat "$params" > "$out/result.txt"')
    follower = subprocess.Popen(
        [*REPX, "run", "--lab", str(lab), "--target", "far", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + _PATIENCE
        while not list(root.glob("base/.work/*/repx/stdout.log")):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)  # following: polling the progress log
        follower.send_signal(signal.SIGINT)
        _out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 130, err
    assert "stopped following; the run goes on on target 'far'" in err
    _wait_finished(root)
    status = _repx(env, "status", "--lab", lab, "--target", "far", "--json")
    assert {j["status"] for j in json.loads(status.stdout)["jobs"]} == {"succeeded"}


# -- a remote SLURM ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """An SSH host whose SLURM is the single-node cluster of this machine.

    The cluster's controller listens on this machine's loopback; inside the host's network
    namespace a relay (``busybox nc -ll``, each connection ``nsenter``-ed back into our own
    network namespace) answers on the same port. glibc resolves the controller's name only
    with a non-loopback interface up: a veth pair with both ends inside the namespace.
    """
    from slurm_cluster import SlurmCluster  # noqa: PLC0415

    if shutil.which("nsenter") is None:
        pytest.skip("nsenter is not installed")
    with SlurmCluster.session():
        directory = tmp_path_factory.mktemp("slurm-ssh")
        started = start_hosts(directory, {"cluster": False})
        namespace = started.hosts["cluster"].namespace
        relay_script = directory / "relay.sh"
        relay_script.write_text(
            f"#!/bin/sh\nexec nsenter --net=/proc/{os.getpid()}/ns/net"
            f" busybox nc 127.0.0.1 {_SLURMCTLD_PORT}\n"
        )
        relay_script.chmod(0o755)
        relay = None
        try:
            in_ns = ["ip", "netns", "exec", namespace]
            subprocess.run(
                [*in_ns, "ip", "link", "add", "repxa", "type", "veth", "peer", "name", "repxb"],
                check=True,
            )
            subprocess.run(
                [*in_ns, "ip", "addr", "add", "169.254.77.1/32", "dev", "repxa"], check=True
            )
            for link in ("repxa", "repxb"):
                subprocess.run([*in_ns, "ip", "link", "set", link, "up"], check=True)
            relay = subprocess.Popen(
                [
                    *in_ns,
                    "busybox",
                    "nc",
                    "-ll",
                    "-p",
                    str(_SLURMCTLD_PORT),
                    "-e",
                    str(relay_script),
                ]
            )
            probe = subprocess.run(
                [*in_ns, "sinfo", "--noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if probe.returncode != 0:
                pytest.skip(f"the cluster does not answer from the namespace: {probe.stderr}")
            yield started
        finally:
            for base in started.hosts["cluster"].root.iterdir():
                stop_runners(base)
            if relay is not None:
                relay.terminate()
                relay.wait(timeout=10)
            stop_hosts(started)


#: slurmctld's port in tools/slurm-single-node.sh's configuration (SLURM's default)
_SLURMCTLD_PORT = 6817


def test_remote_slurm_runs_the_plan_as_a_batch_job(tmp_path, slurm_host):
    root = _host_root(slurm_host, "cluster", tmp_path)
    extra = 'default_scheduler = "slurm"\nconcurrency = 2'
    env = _config(tmp_path, slurm_host, slurm_host.target_toml("hpc", "cluster", root, extra))
    lab = _lab(tmp_path / "lab")
    started = _repx(env, "run", "--lab", lab, "--target", "hpc", "--wait")
    assert started.returncode == 0, started.stderr
    assert "5 succeeded" in started.stderr, started.stderr
    (pid,) = [p.read_text().strip() for p in root.glob("submissions/*/pid")]
    assert pid.startswith("slurm:"), pid
    status = _repx(env, "status", "--lab", lab, "--target", "hpc", "--json")
    assert {j["status"] for j in json.loads(status.stdout)["jobs"]} == {"succeeded"}

    # cancel: scancel; the runner records its running jobs interrupted
    slow = _lab(tmp_path / "slow", script='sleep 600; cat "$params" > "$out/result.txt"')
    assert _repx(env, "run", "--lab", slow, "--target", "hpc").returncode == 0
    deadline = time.monotonic() + _PATIENCE
    while not list(root.glob("base/.work/*/repx/stdout.log")):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = _repx(env, "cancel", "--lab", slow, "--target", "hpc")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "stopped 1 run(s)" in cancelled.stderr
    finished = [p.read_text() for p in root.glob("submissions/*/finished.log")]
    assert len(finished) == 2 and any("interrupted" in f for f in finished), finished


@pytest.mark.slow
def test_remote_slurm_runs_scatter_gather_jobs_in_its_batch_job(tmp_path, slurm_host):
    from runlab import build_lab, outputs_digest, run_jobs  # noqa: PLC0415

    lab = build_lab("scatter")
    root = _host_root(slurm_host, "cluster", tmp_path)
    extra = 'default_scheduler = "slurm"\nconcurrency = 2'
    env = _config(tmp_path, slurm_host, slurm_host.target_toml("hpc", "cluster", root, extra))
    far = _repx(env, "run", "sums", "--lab", lab, "--target", "hpc", "--wait")
    assert far.returncode == 0, far.stderr
    here = tmp_path / "here"
    local = _repx(env, "run", "sums", "--lab", lab, "--base", here)
    assert local.returncode == 0, local.stderr
    jobs = sorted(run_jobs(lab, "sums"))
    assert outputs_digest(root / "base", jobs) == outputs_digest(here, jobs)
    (squares,) = [j for j in jobs if j.endswith("-squares")]
    assert len(_tokens(root / "base" / "outputs" / squares)) == 8
