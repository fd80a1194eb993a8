"""``repx run --force``: selected jobs rerun although their outputs are intact; the new
outputs replace the old in one step, and a forced attempt that fails loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.cli import app
from repx.run import protocol as store_mod  # the commit protocol (store.py uses it)
from storefake import record_attempt

runner = CliRunner()

#: Writes a new value each attempt (its output tells attempts apart); fails while the
#: file named by the parameter `fail_if` exists (native runtime: the host's file system).
_SCRIPT = """\
p=$(cat "$params"); p=${p#*'"fail_if":'}; p=${p#*'"'}; flag=${p%%'"'*}
if [ -e "$flag" ]; then
  echo "told to fail" >&2
  exit 3
fi
cat /proc/sys/kernel/random/uuid > "$out/result.json"
"""


def lab(tmp_path):
    flag = tmp_path / "fail-now"
    runs = (
        RunSpec(
            "r",
            parameters={"fail_if": [str(flag)]},
            stages=(
                StageSpec("first", params=("fail_if",), script=_SCRIPT),
                StageSpec("second", after=("first",)),
            ),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs)
    return factory, flag


def run(factory, tmp_path, *args):
    result = runner.invoke(
        app,
        [
            "run",
            "--lab",
            str(factory.root),
            "--base",
            str(tmp_path / "runs"),
            "--runtime",
            "native",
            "--json",
            *args,
        ],
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, events


def started(events):
    return sorted(e["job"] for e in events if e.get("event") == "started")


def test_force_reruns_the_selected_jobs_and_replaces_their_outputs(tmp_path):
    factory, _ = lab(tmp_path)
    first = factory.stage_jobs[("r", "first")][0]
    output = tmp_path / "runs/outputs" / first / "out/result.json"
    result, _ = run(factory, tmp_path)
    assert result.exit_code == 0, result.stderr
    before = output.read_text()
    result, events = run(factory, tmp_path, first)
    assert result.exit_code == 0 and started(events) == []  # intact: nothing to do
    result, events = run(factory, tmp_path, "--force", first[:8])
    assert result.exit_code == 0, result.stderr
    assert started(events) == [first]  # the selected job only, not its consumer
    assert output.read_text() != before


def test_a_forced_attempt_that_fails_keeps_the_intact_outputs(tmp_path):
    factory, flag = lab(tmp_path)
    first = factory.stage_jobs[("r", "first")][0]
    base = tmp_path / "runs"
    assert run(factory, tmp_path)[0].exit_code == 0
    before = (base / "outputs" / first / "out/result.json").read_text()
    flag.touch()
    result, events = run(factory, tmp_path, "--force", first)
    assert result.exit_code == 1  # a job failed
    assert (base / "outputs" / first / "out/result.json").read_text() == before
    status = json.loads(
        runner.invoke(
            app, ["status", "--lab", str(factory.root), "--base", str(base), "--json"]
        ).stdout
    )
    assert {j["id"]: j["status"] for j in status["jobs"]}[first] == "succeeded"
    # the failed attempt is kept for debugging, and its log is the one reported
    [failed] = next(e for e in events if e.get("event") == "summary")["failed"]
    assert "told to fail" in Path(failed["log"]).read_text()
    assert failed["log"] == str(base / "outputs" / first / "failed-rerun/repx/stderr.log")


def test_a_committed_attempt_is_replaced_in_one_step(tmp_path, monkeypatch):
    base = tmp_path / "runs"
    record_attempt(base, "lab", "abc-s", status="failed", exit_code=1, stderr="one\n")
    # the real exchange: supported where the tests run (else the fallback below is all)
    work = tmp_path / "a"
    work.mkdir()
    (work / "f").write_text("new")
    final = tmp_path / "b"
    final.mkdir()
    (final / "f").write_text("old")
    assert store_mod._exchange(str(work), str(final))
    assert (final / "f").read_text() == "new" and (work / "f").read_text() == "old"
    record_attempt(base, "lab", "abc-s", status="failed", exit_code=2, stderr="two\n")
    assert (base / "outputs/abc-s/repx/stderr.log").read_text() == "two\n"
    # where the file system cannot exchange: moved aside, then replaced
    monkeypatch.setattr(store_mod, "_exchange", lambda a, b: False)
    record_attempt(base, "lab", "abc-s", status="failed", exit_code=3, stderr="three\n")
    assert (base / "outputs/abc-s/repx/stderr.log").read_text() == "three\n"
    assert sorted(p.name for p in (base / ".work").iterdir()) == []
