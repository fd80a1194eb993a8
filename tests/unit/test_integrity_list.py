"""Lab integrity on hand-written labs: every entry checked, confinement, lab id, copies.

Each tampering is refused by ``repx verify`` (``verify_lab``) and by the check ``repx run``
makes before any job starts (``open_lab`` + ``validate_lab``). The same attacks on a lab
built by Nix, through the real CLI, are in tests/integration/test_lab_integrity.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from labfactory import (
    LAB_METADATA,
    FactoryLab,
    edit_json,
    lab_id_of,
    refresh_integrity,
    write_lab,
    write_metadata,
)
from repx.cli import app
from repx.errors import LabError
from repx.inspect.verify import verify_lab
from repx.lab import integrity, nix_record
from repx.lab.loader import open_lab
from repx.lab.validate import validate_lab

TOOL = "0" * 32 + "-tool"
DATA = "1" * 32 + "-data"


def add_closure(lab: FactoryLab) -> None:
    """Give the lab a store/ closure with the symlinks real ones have, then relist it."""
    root = lab.root
    tool = root / "store" / TOOL
    (tool / "bin").mkdir(parents=True)
    (tool / "bin" / "busybox").write_text("#!/bin/sh\necho busybox\n")
    (tool / "bin" / "busybox").chmod(0o555)
    (tool / "bin" / "awk").symlink_to("busybox")  # applet link, as busybox packages have
    (tool / "bin" / "other").write_text("#!/bin/sh\necho other\n")
    (tool / "bin" / "other").chmod(0o555)
    data = root / "store" / DATA
    (data / "share" / "doc").mkdir(parents=True)
    (data / "share" / "doc" / "a.txt").write_text("a")
    (data / "share" / "empty").mkdir()
    (tool / "share").symlink_to(f"../{DATA}/share")  # a link to a directory
    tools_bin = root / open_lab(root).meta.host_tools / "bin"
    (tools_bin / "abs").symlink_to(f"/nix/store/{TOOL}/bin/awk")  # absolute, in the closure
    edit_json(
        root / LAB_METADATA,
        lambda m: m.update(store_paths=[f"/nix/store/{TOOL}", f"/nix/store/{DATA}"]),
    )
    refresh_integrity(root)


@pytest.fixture
def lab(factory_lab: FactoryLab) -> FactoryLab:
    """The 14-job factory lab with a store/ closure holding symlinks."""
    add_closure(factory_lab)
    return dataclasses.replace(factory_lab, lab_id=lab_id_of(factory_lab.root))


def refused(root: Path) -> tuple[list[str], str]:
    """(verify's lines, run's error): both must refuse the lab."""
    report = verify_lab(root)
    assert not report.ok
    lines = [f"missing {p}" for p in report.missing]
    lines += [f"altered {p} ({report.reasons[p]})" for p in report.altered]
    lines += [f"extra {p} ({report.reasons[p]})" for p in report.extra]
    lines += report.problems
    with pytest.raises(LabError) as info:
        validate_lab(open_lab(root), use_cache=False)
    assert "\n" not in info.value.message
    return lines, info.value.message


def test_a_lab_with_symlinks_is_valid(lab):
    report = verify_lab(lab.root)
    assert report.ok, report
    assert validate_lab(open_lab(lab.root), use_cache=False).ok
    meta = open_lab(lab.root).integrity_list()
    assert {s.path: s.target for s in meta.symlinks}[f"store/{TOOL}/bin/awk"] == "busybox"
    assert f"store/{DATA}/share/empty" in meta.empty_dirs
    assert any(f.executable for f in meta.files)


# -- every entry -------------------------------------------------------------------------


def test_symlink_repointed(lab):
    awk = lab.root / "store" / TOOL / "bin" / "awk"
    awk.unlink()
    awk.symlink_to("other")
    lines, error = refused(lab.root)
    rel = f"store/{TOOL}/bin/awk"
    assert lines == [f"altered {rel} (symlink to 'other', listed as 'busybox')"]
    assert f"'{rel}' was altered (symlink to 'other', listed as 'busybox')" in error


def test_added_symlink_to_etc_passwd(lab):
    (lab.root / "store" / TOOL / "bin" / "passwd").symlink_to("/etc/passwd")
    lines, error = refused(lab.root)
    rel = f"store/{TOOL}/bin/passwd"
    assert lines == [f"extra {rel} (unexpected symlink to '/etc/passwd')"]
    assert f"'{rel}' is not listed (unexpected symlink to '/etc/passwd')" in error


def test_job_out_dir_replaced_by_a_link_to_root(lab):
    out = lab.root / "jobs" / lab.job_ids[0] / "out"
    shutil.rmtree(out)
    out.symlink_to("/")
    lines, error = refused(lab.root)
    rel = f"jobs/{lab.job_ids[0]}/out"
    assert lines == [f"altered {rel} (a symlink to '/', listed as a directory)"]
    assert rel in error


def test_executable_bit_changed(lab):
    job = lab.job_ids[0]
    stage = open_lab(lab.root).jobs[job].stage
    (lab.root / f"jobs/{job}/bin/{stage}").chmod(0o644)
    (lab.root / f"jobs/{job}/parameters.json").chmod(0o755)
    lines, _ = refused(lab.root)
    assert lines == [
        f"altered jobs/{job}/bin/{stage} (executable bit changed (no longer executable))",
        f"altered jobs/{job}/parameters.json (executable bit changed)",
    ]


def test_a_filesystem_where_every_file_is_executable(lab):
    # as vfat shows files (fmask 022): the executable bit carries no information
    for path in lab.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o755)
    assert verify_lab(lab.root).ok


def test_removed_empty_dir_and_added_dir(lab):
    (lab.root / "store" / DATA / "share" / "empty").rmdir()
    (lab.root / "store" / "extra" / "deep").mkdir(parents=True)
    (lab.root / "store" / "extra" / "deep" / "f").write_text("x")
    lines, _ = refused(lab.root)
    assert lines == [
        f"missing store/{DATA}/share/empty",
        "extra store/extra (unexpected directory)",
    ]


def test_listed_symlink_leaving_the_lab(lab):
    link = lab.root / "store" / TOOL / "bin" / "sh"
    link.symlink_to("/usr/bin/sh")
    up = lab.root / "store" / TOOL / "bin" / "up"
    up.symlink_to("../../../../etc/passwd")
    refresh_integrity(lab.root)  # listed, hashed, lab id recomputed: still refused
    lines, error = refused(lab.root)
    assert lines == [
        f"{LAB_METADATA}: symlinks: 'store/{TOOL}/bin/sh' points outside the lab and its "
        "closure ('/usr/bin/sh')",
        f"{LAB_METADATA}: symlinks: 'store/{TOOL}/bin/up' points outside the lab and its "
        "closure ('../../../../etc/passwd')",
    ]
    assert error.startswith(f"invalid lab {lab.root.resolve()}: {lines[0]} (and 1 more")


def test_symlinks_are_followed_as_the_kernel_does(lab):
    # "up" leads to the lab root; "up/../x" then leaves the lab (read lexically, it would
    # seem to name jobs/x)
    (lab.root / "jobs" / "up").symlink_to("..")
    (lab.root / "jobs" / "escape").symlink_to("up/../x")
    # into the store only through the closure
    (lab.root / "store" / TOOL / "bin" / "sibling").symlink_to(f"../../{DATA}/share")
    (lab.root / "store" / TOOL / "bin" / "foreign").symlink_to("../../" + "2" * 32 + "-x/bin")
    (lab.root / "store" / TOOL / "bin" / "above").symlink_to(f"/nix/store/{TOOL}/../../etc")
    refresh_integrity(lab.root)
    lines, _ = refused(lab.root)
    assert lines == [
        f"{LAB_METADATA}: symlinks: '{rel}' points outside the lab and its closure ('{target}')"
        for rel, target in (
            ("jobs/escape", "up/../x"),
            (f"store/{TOOL}/bin/above", f"/nix/store/{TOOL}/../../etc"),
            (f"store/{TOOL}/bin/foreign", "../../" + "2" * 32 + "-x/bin"),
        )
    ]


# -- the lab id --------------------------------------------------------------------------


def _rewrite_list(root: Path, rel: str) -> dict[str, Any]:
    """Change a file and its sha256 in the list, keeping the lab id (a naive attacker)."""
    (root / rel).write_text('{"seed": 99}')
    digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    data = (root / LAB_METADATA).read_bytes()
    meta = json.loads(data)
    for entry in meta["files"]:
        if entry["path"] == rel:
            entry["sha256"] = digest
    return meta


def test_rewritten_hash_list_keeping_the_id(lab):
    rel = f"jobs/{lab.job_ids[0]}/parameters.json"
    meta = _rewrite_list(lab.root, rel)
    old_id = meta["lab_id"]
    # same layout (id first), same id: only the id's hash gives it away
    body = json.dumps({k: v for k, v in meta.items() if k != "lab_id"}).encode()
    (lab.root / LAB_METADATA).write_bytes(b'{"lab_id":"' + old_id.encode() + b'",' + body[1:])
    lines, error = refused(lab.root)
    assert len(lines) == 1
    assert lines[0].startswith(f"{LAB_METADATA}: lab_id: '{old_id}', but the content hashes to")
    assert "the metadata or its integrity list was rewritten" in error


def test_rewritten_hash_list_reformatted(lab):
    rel = f"jobs/{lab.job_ids[0]}/parameters.json"
    meta = _rewrite_list(lab.root, rel)
    (lab.root / LAB_METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True))
    lines, _ = refused(lab.root)
    assert lines == [
        f"{LAB_METADATA}: lab_id: the file does not start with the lab id member (rewritten "
        "by hand?); the lab id cannot be checked against the content"
    ]


def test_rewritten_hash_list_with_a_recomputed_id_needs_expect(lab):
    rel = f"jobs/{lab.job_ids[0]}/parameters.json"
    meta = _rewrite_list(lab.root, rel)
    new_id = write_metadata(lab.root, meta)  # an attacker who knows how the id is made
    assert new_id != lab.lab_id
    # a consistent rewrite of a copy: only the id noted at build time tells
    assert verify_lab(lab.root).ok
    report = verify_lab(lab.root, expect=lab.lab_id)
    assert not report.ok
    assert report.problems == [
        f"{LAB_METADATA}: lab_id: the content hashes to '{new_id}', not the expected "
        f"'{lab.lab_id}' (a different lab, or this one was altered)"
    ]
    assert verify_lab(lab.root, expect=new_id).ok
    # the same check for callers of validate_lab (repx run could offer --expect)
    with pytest.raises(LabError, match=f"not the expected '{lab.lab_id}'"):
        validate_lab(open_lab(lab.root), expect_lab_id=lab.lab_id)
    assert validate_lab(open_lab(lab.root), expect_lab_id=new_id).ok


def test_a_lab_without_the_full_list_is_told_to_rebuild(lab):
    meta = json.loads((lab.root / LAB_METADATA).read_bytes())
    for key in ("integrity", "symlinks", "empty_dirs"):
        meta.pop(key)
    write_metadata(lab.root, meta)
    with pytest.raises(LabError) as info:
        validate_lab(open_lab(lab.root), use_cache=False)
    assert info.value.message.startswith(
        f"invalid lab {lab.root.resolve()}: {LAB_METADATA}: integrity: '(none)', this repx "
        "reads 'repx-integrity/1' (a lab built by an older repx: rebuild it with repx build)"
    )


def test_lab_id_is_the_hash_of_the_rest_of_the_file(lab):
    data = (lab.root / LAB_METADATA).read_bytes()
    assert integrity.content_lab_id(data) == lab_id_of(lab.root) == lab.lab_id
    assert integrity.content_lab_id(data.replace(b'"job_count": 14', b'"job_count": 15')) not in {
        None,
        lab.lab_id,
    }
    assert integrity.content_lab_id(b'{"format": "x"}') is None


# -- confinement at load -----------------------------------------------------------------


def _edit_first_job(lab: FactoryLab, change) -> tuple[str, str]:
    manifest = lab.manifest_path("simulation")
    job = lab.run_jobs["simulation"][0]
    edit_json(manifest, lambda m: change(m["jobs"], job))
    refresh_integrity(lab.root)  # even a relisted lab is refused
    return manifest.relative_to(lab.root).as_posix(), job


def _load_error(lab: FactoryLab) -> str:
    with pytest.raises(LabError) as info:
        open_lab(lab.root)
    report = verify_lab(lab.root)  # verify reports it too, without stopping
    assert not report.ok
    assert info.value.message in report.problems
    return info.value.message


def test_absolute_executable(lab):
    manifest, job = _edit_first_job(
        lab, lambda jobs, j: jobs[j]["executables"]["main"].update(path="/bin/sh")
    )
    assert _load_error(lab) == (
        f"{manifest}: jobs.{job}.executables.main.path: '/bin/sh' is an absolute path (lab "
        "paths are relative to the lab)"
    )


def test_parameter_file_outside_the_lab(lab):
    manifest, job = _edit_first_job(
        lab, lambda jobs, j: jobs[j].update(parameters_file="jobs/../../../etc/passwd")
    )
    assert _load_error(lab) == (
        f"{manifest}: jobs.{job}.parameters_file: 'jobs/../../../etc/passwd' leaves the lab "
        "('..' component)"
    )


def test_job_id_with_dotdot(lab):
    bad = "0" * 32 + "-../../x"
    manifest, _ = _edit_first_job(lab, lambda jobs, j: jobs.update({bad: jobs.pop(j)}))
    assert _load_error(lab) == (
        f"{manifest}: jobs.{bad}: job id is not a plain file name ('/', NUL or '..')"
    )


def test_output_outside_out(lab):
    manifest, job = _edit_first_job(
        lab, lambda jobs, j: jobs[j]["outputs"].update({"samples.csv": "$out/../../x"})
    )
    assert _load_error(lab) == (
        f"{manifest}: jobs.{job}.outputs.samples.csv: '$out/../../x' is not a path under $out/"
    )


def test_duplicate_job_id_with_different_content(lab):
    simulate = lab.run_jobs["simulation"][0]
    report = lab.manifest_path("report")
    copy = json.loads(lab.manifest_path("simulation").read_text())["jobs"][simulate]
    copy["params"] = {"seed": 666, "noise": 0.1}
    edit_json(report, lambda m: m["jobs"].update({simulate: copy}))
    refresh_integrity(lab.root)
    rel = report.relative_to(lab.root).as_posix()
    first = lab.manifest_path("simulation").relative_to(lab.root).as_posix()
    assert _load_error(lab) == (
        f"{rel}: jobs.{simulate}: differs from the job of the same id in {first} (a job id "
        "names one content; rebuild the lab)"
    )


def test_file_parameter_outside_the_closure(lab):
    manifest, job = _edit_first_job(
        lab, lambda jobs, j: jobs[j]["params"].update(seed=["/nix/store/" + "3" * 32 + "-x.csv"])
    )
    lines, _ = refused(lab.root)
    assert lines == [
        f"{manifest}: jobs.{job}.params.seed: '/nix/store/{'3' * 32}-x.csv' is not in the "
        "lab's closure (store_paths): a host without Nix would not have it"
    ]
    _edit_first_job(lab, lambda jobs, j: jobs[j]["params"].update(seed=f"/nix/store/{TOOL}/a"))
    assert verify_lab(lab.root).ok


def test_metadata_paths_are_confined(lab):
    edit_json(lab.root / LAB_METADATA, lambda m: m.update(host_tools="/usr"))
    with pytest.raises(LabError, match=r"^lab/lab-metadata\.json: host_tools: '/usr' is an abs"):
        open_lab(lab.root)


@pytest.mark.parametrize("path", ["/etc/shadow", "jobs/../../etc/shadow"])
def test_integrity_list_paths_are_confined(lab, path):
    edit_json(lab.root / LAB_METADATA, lambda m: m["files"][1].update(path=path))
    with pytest.raises(LabError) as info:
        open_lab(lab.root)
    assert info.value.message == (
        f"{LAB_METADATA}: files[1].path: '{path}' is not a path inside the lab"
    )


# -- copies ------------------------------------------------------------------------------


def test_dereferenced_copy_is_accepted(lab, tmp_path):
    tools = open_lab(lab.root).meta.host_tools
    abs_link = lab.root / tools / "bin" / "abs"
    abs_link.unlink()  # /nix/store/<tool> does not exist here: copy the rest
    copy = tmp_path / "copy"
    shutil.copytree(lab.root, copy, symlinks=False)  # as cp -rL: every link dereferenced
    abs_link.symlink_to(f"/nix/store/{TOOL}/bin/awk")
    # what cp -rL makes of the absolute link on a host whose /nix/store holds the closure
    shutil.copy(lab.root / "store" / TOOL / "bin" / "busybox", copy / tools / "bin" / "abs")
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    report = verify_lab(copy)
    assert report.ok, report
    assert validate_lab(open_lab(copy), use_cache=False).ok
    # what the links pointed to is checked: a changed dereferenced copy is refused
    (copy / "store" / TOOL / "bin" / "awk").write_text("#!/bin/sh\necho evil\n")
    (copy / "store" / TOOL / "share" / "doc" / "b.txt").write_text("b")
    report = verify_lab(copy)
    assert report.altered == [f"store/{TOOL}/bin/awk"]
    assert report.reasons[f"store/{TOOL}/bin/awk"] == "sha256 differs"
    assert report.extra == [f"store/{TOOL}/share/doc/b.txt"]


def test_copy_preserving_links_is_accepted(lab, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(lab.root, copy, symlinks=True)
    assert verify_lab(copy).ok


# -- Nix's record ------------------------------------------------------------------------


def test_nar_hash_matches_nix(lab):
    nix = shutil.which("nix")
    if nix is None:
        pytest.skip("nix is not installed")
    result = nix_record.process.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "hash",
            "path",
            "--base16",
            "--type",
            "sha256",
            lab.root,
        ]
    )
    assert nix_record.nar_sha256(lab.root) == result.stdout.strip()


def test_recorded_hash_forms():
    hex_digest = "60ad743d9969f070166e17a03a579e9527f8b936623989b66f618e5be67bf6f6"
    assert nix_record.hash_hex("sha256-YK10PZlp8HAWbhegOleelSf4uTZiOYm2b2GOW+Z79vY=") == hex_digest
    assert nix_record.hash_hex(f"sha256:{hex_digest}") == hex_digest
    assert nix_record.hash_hex("md5:00") is None


# -- repx build prints the lab id --------------------------------------------------------


def test_build_prints_the_lab_id(lab, tmp_path, monkeypatch):
    from typer.testing import CliRunner  # noqa: PLC0415

    from repx import nix  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nix, "build", lambda *args, **kwargs: lab.root)
    result = CliRunner().invoke(app, ["build", "--no-link"])
    assert result.exit_code == 0, result.output
    assert (
        f"lab id: {lab.lab_id}  (check a copy with: repx verify --lab COPY --expect "
        f"{lab.lab_id})" in result.stdout.replace("\n", " ")
    )


def test_write_lab_after_refresh(tmp_path):
    lab = write_lab(tmp_path / "lab")
    assert integrity.content_lab_id((lab.root / LAB_METADATA).read_bytes()) == lab.lab_id
