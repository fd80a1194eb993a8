"""`repx run` warns when `result` is older than the experiment's sources."""

from __future__ import annotations

import os
import subprocess
import time

from labfactory import write_lab
from repx.config import RuntimeKind
from repx.run.events import Notice
from repx.run.reporter import RecordingReporter
from repx.services.freshness import stale_warning
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab


def experiment(tmp_path):
    exp = tmp_path / "exp"
    (exp / "nix").mkdir(parents=True)
    (exp / "flake.nix").write_text("{ }\n")
    (exp / "nix" / "stage.nix").write_text("{ }\n")
    (exp / ".gitignore").write_text("result\nscratch.txt\n")
    subprocess.run(["git", "init", "-q", str(exp)], check=True)
    subprocess.run(["git", "-C", str(exp), "add", "-A"], check=True)
    lab = write_lab(tmp_path / "lab")
    (exp / "result").symlink_to(lab.root)
    built = time.time() - 100
    os.utime(exp / "result", (built, built), follow_symlinks=False)
    for path in (exp / "flake.nix", exp / "nix" / "stage.nix", exp / ".gitignore"):
        os.utime(path, (built - 50, built - 50))
    return exp, built


def test_a_source_changed_after_the_build_is_named(tmp_path):
    exp, _ = experiment(tmp_path)
    assert stale_warning(exp / "result") is None
    (exp / "scratch.txt").write_text("ignored by git: not a source")
    assert stale_warning(exp / "result") is None
    (exp / "nix" / "new-stage.nix").write_text("{ }\n")  # untracked, not ignored: a source
    warning = stale_warning(exp / "result")
    assert warning is not None and warning.startswith("nix/new-stage.nix changed after")
    assert "`repx run --build`" in warning


def test_run_warns_and_still_runs(tmp_path, monkeypatch):
    exp, _ = experiment(tmp_path)
    (exp / "nix" / "stage.nix").write_text("{ changed = true; }\n")
    monkeypatch.chdir(exp)
    reporter = RecordingReporter()
    options = RunOptions(
        where=Location(lab=exp / "result", base=tmp_path / "base"),
        runtime=RuntimeKind.NATIVE,
        jobs=2,
    )
    assert run_lab(options, reporter).exit_code == 0
    [notice] = [n for n in reporter.of_type(Notice) if "changed after" in n.message]
    assert notice.message.startswith("nix/stage.nix changed after")


def test_a_lab_directory_or_a_link_without_a_flake_is_not_checked(tmp_path):
    lab = write_lab(tmp_path / "lab")
    assert stale_warning(lab.root) is None
    (tmp_path / "result").symlink_to(lab.root)
    assert stale_warning(tmp_path / "result") is None
