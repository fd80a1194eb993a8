"""Tampering with a lab built by Nix: refused by ``repx verify`` and by ``repx run``.

The template lab is built once per session; each test tampers with a copy (``cp -a``) and
runs the real CLI. ``repx run`` must refuse before any job starts: the output base stays
without outputs. A lab still in the Nix store is also compared with Nix's record of it
(tested on the store path itself, with a tampered copy bound over it in a private mount
namespace, so the real store is never touched).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from runlab import build_lab, copy_with_closure, lab_jobs, repx, repx_argv

from labfactory import LAB_METADATA, refresh_integrity

pytestmark = pytest.mark.slow


def _copy(lab: Path, dest: Path) -> Path:
    return copy_with_closure(lab, dest)  # the copy's store/ holds copies: safe to tamper


def _first_job(lab: Path, stage: str = "simulate") -> tuple[str, dict]:
    jobs = lab_jobs(lab)
    job_id = sorted(j for j, job in jobs.items() if job["stage"] == stage)[0]
    return job_id, jobs[job_id]


def _manifest_of(lab: Path, job_id: str) -> Path:
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    for entry in meta["runs"].values():
        if job_id in json.loads((lab / entry["manifest"]).read_text())["jobs"]:
            return lab / entry["manifest"]
    raise AssertionError(job_id)


def _edit_manifest(lab: Path, job_id: str, change: Callable[[dict], None]) -> None:
    path = _manifest_of(lab, job_id)
    manifest = json.loads(path.read_text())
    change(manifest["jobs"])
    path.write_text(json.dumps(manifest))


def _store_dir(lab: Path, name: str) -> Path:
    return next(p for p in (lab / "store").iterdir() if p.name.endswith(name))


def repoint_symlink(lab: Path) -> str:
    """Point a program link of the lab's store copy at another program of the same package."""
    links = sorted(
        p for p in (lab / "store").rglob("*") if p.is_symlink() and p.parent.name == "bin"
    )
    link, other = next(
        (a, b)
        for a in links
        for b in links
        if a.parent == b.parent and os.readlink(a) != os.readlink(b)
    )
    new = os.readlink(other)
    link.unlink()
    link.symlink_to(new)  # e.g. every awk now runs another program
    store_dir = link.relative_to(lab / "store").parts[0]
    return f"content differs from /nix/store/{store_dir} (NAR hash"


def add_passwd_link(lab: Path) -> str:
    store_dir = _store_dir(lab, "-bash-5.2.15")
    (store_dir / "bin" / "passwd").symlink_to("/etc/passwd")
    return f"content differs from /nix/store/{store_dir.name} (NAR hash"


def edit_store_file(lab: Path) -> str:
    """Change one byte of a regular file of a copied store path (the NAR hash tells)."""
    store_dir = _store_dir(lab, "-bash-5.2.15")
    path = next(p for p in sorted(store_dir.rglob("*")) if p.is_file() and not p.is_symlink())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    return f"content differs from /nix/store/{store_dir.name} (NAR hash"


def edit_host_tool(lab: Path) -> str:
    """Replace a host tool of the copy (host-tools is a store path too)."""
    tools = next((lab / "host-tools").iterdir())
    (tools / "bin" / "jq").unlink()
    (tools / "bin" / "jq").write_text("#!/bin/sh\necho evil\n")
    return "content differs from /nix/store/"


def out_to_root(lab: Path) -> str:
    job_id, _ = _first_job(lab)
    out = lab / "jobs" / job_id / "out"
    shutil.rmtree(out)
    out.symlink_to("/")
    return "(a symlink to '/', listed as a directory)"


def rewrite_hash_list(lab: Path) -> str:
    job_id, _ = _first_job(lab)
    rel = f"jobs/{job_id}/parameters.json"
    (lab / rel).write_text('{"noise":0,"seed":666}')
    meta = json.loads((lab / LAB_METADATA).read_bytes())
    for entry in meta["files"]:
        if entry["path"] == rel:
            entry["sha256"] = hashlib.sha256((lab / rel).read_bytes()).hexdigest()
    old_id = meta.pop("lab_id")
    # the naive rewrite: same layout, the id left as it was
    body = json.dumps(meta, separators=(",", ":")).encode()
    (lab / LAB_METADATA).write_bytes(b'{"lab_id":"' + old_id.encode() + b'",' + body[1:])
    return f"lab_id: '{old_id}', but the content hashes to"


def absolute_executable(lab: Path) -> str:
    job_id, _ = _first_job(lab)
    _edit_manifest(
        lab, job_id, lambda jobs: jobs[job_id]["executables"]["main"].update(path="/bin/sh")
    )
    return f"jobs.{job_id}.executables.main.path: '/bin/sh' is an absolute path"


def dotdot_parameter_file(lab: Path) -> str:
    job_id, _ = _first_job(lab)
    _edit_manifest(
        lab, job_id, lambda jobs: jobs[job_id].update(parameters_file="../../etc/passwd")
    )
    return f"jobs.{job_id}.parameters_file: '../../etc/passwd' leaves the lab"


def dotdot_job_id(lab: Path) -> str:
    job_id, _ = _first_job(lab)
    bad = job_id.split("-")[0] + "-../../../tmp/x"
    _edit_manifest(lab, job_id, lambda jobs: jobs.update({bad: jobs.pop(job_id)}))
    return f"jobs.{bad}: job id is not a plain file name"


def duplicate_job_id(lab: Path) -> str:
    job_id, job = _first_job(lab)
    other = _first_job(lab, "report")[0]
    changed = {**job, "params": {**job["params"], "seed": 666}}
    _edit_manifest(lab, other, lambda jobs: jobs.update({job_id: changed}))
    return f"jobs.{job_id}: differs from the job of the same id in"


def executable_bit(lab: Path) -> str:
    _, job = _first_job(lab)
    exe = job["executables"]["main"]["path"]
    (lab / exe).chmod(0o644)
    return "(executable bit changed (no longer executable))"


TAMPERINGS = [
    repoint_symlink,
    add_passwd_link,
    edit_store_file,
    edit_host_tool,
    out_to_root,
    rewrite_hash_list,
    absolute_executable,
    dotdot_parameter_file,
    dotdot_job_id,
    duplicate_job_id,
    executable_bit,
]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
def test_tampering_is_refused_by_verify_and_run(tamper, tmp_path):
    lab = _copy(build_lab("sweep"), tmp_path / "lab")
    assert repx("verify", "--lab", lab).returncode == 0
    expected = tamper(lab)

    verify = repx("verify", "--lab", lab)
    assert verify.returncode == 1, verify.stderr
    assert expected in verify.stdout + verify.stderr
    assert "Traceback" not in verify.stderr

    base = tmp_path / "base"
    run = repx("run", "--lab", lab, "--base", base, "--runtime", "native")
    assert run.returncode == 2, run.stderr
    assert expected in run.stderr
    assert run.stderr.startswith("error: ")
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
    # refused before any job started: nothing in the output store
    assert not (base / "outputs").exists() or not os.listdir(base / "outputs")


def test_builder_records_the_size_of_the_listed_files():
    lab = build_lab("sweep")
    meta = json.loads((lab / LAB_METADATA).read_bytes())
    sizes = [(lab / entry["path"]).stat().st_size for entry in meta["files"]]
    assert len(sizes) > 10
    assert meta["files_bytes"] == sum(sizes)


def test_verify_expect_and_nix_record(tmp_path):
    lab = build_lab("sweep")
    lab_id = json.loads((lab / LAB_METADATA).read_bytes())["lab_id"]
    ok = repx("verify", "--lab", lab, "--expect", lab_id)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "content matches the lab id (as expected) and Nix's record of the store path: ok" in (
        ok.stderr
    )
    other = repx("verify", "--lab", lab, "--expect", "0" * 32)
    assert other.returncode == 1
    assert f"the content hashes to '{lab_id}', not the expected '{'0' * 32}'" in other.stdout


def test_consistently_rewritten_copy_needs_expect(tmp_path):
    """An attacker who recomputes the list and the id correctly: only --expect tells."""
    original = build_lab("sweep")
    lab_id = json.loads((original / LAB_METADATA).read_bytes())["lab_id"]
    lab = _copy(original, tmp_path / "lab")
    job_id, _ = _first_job(lab)
    (lab / f"jobs/{job_id}/parameters.json").write_text('{"noise":0,"seed":666}')
    refresh_integrity(lab)
    assert repx("verify", "--lab", lab).returncode == 0
    refused = repx("verify", "--lab", lab, "--expect", lab_id)
    assert refused.returncode == 1
    assert f"not the expected '{lab_id}'" in refused.stdout


def test_store_lab_rewritten_consistently_differs_from_nix_record(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to bind a copy over the store path")
    lab = build_lab("sweep")
    copy = _copy(lab, tmp_path / "lab")
    job_id, _ = _first_job(copy)
    (copy / f"jobs/{job_id}/parameters.json").write_text('{"noise":0,"seed":666}')
    refresh_integrity(copy)  # list and lab id made consistent again
    assert repx("verify", "--lab", copy).returncode == 0
    # seen at the store path (private mount namespace: the real store is untouched)
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", copy, lab]
    result = subprocess.run(
        [*map(str, argv), *repx_argv("verify", "--lab", lab)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{lab}: content differs from Nix's record of the store path" in result.stdout
    assert repx("verify", "--lab", lab).returncode == 0  # outside the namespace: intact
