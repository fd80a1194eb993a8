"""bubblewrap argv: read-only root, private /dev /proc /tmp, binds, store replacement."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from repx import bwrap
from repx.config import RuntimeKind
from repx.errors import UsageError
from repx.run.runtime import MAX_INPUT_BINDS, Runtime, check_mount_paths, impure_warning
from repx.run.spec import JobSpec
from repx.run.store_models import GatherEntry


def pairs(args, flag):
    return [tuple(args[i + 1 : i + 3]) for i, a in enumerate(args) if a == flag]


def test_default_sandbox_is_hermetic():
    args = bwrap.sandbox_options(
        readonly=[Path("/tmp/lab"), Path("/home/me/lab"), Path("/nix/store/x-lab")],
        writable=[Path("/tmp/work/out")],
        links={"/bin/sh": "/tmp/lab/host-tools/h/bin/sh"},
        chdir=Path("/tmp/work/out"),
    )
    # nothing of the host's root: only the store, the given paths, fresh /dev /proc /tmp
    assert ("/", "/") not in pairs(args, "--ro-bind")
    assert args[:3] == ["--ro-bind-try", "/nix/store", "/nix/store"]
    assert args[args.index("--tmpfs") + 1] == "/tmp"
    # the host store is bound whole: paths in it need no bind of their own
    assert pairs(args, "--ro-bind") == [("/tmp/lab", "/tmp/lab"), ("/home/me/lab", "/home/me/lab")]
    assert pairs(args, "--bind") == [("/tmp/work/out", "/tmp/work/out")]
    assert pairs(args, "--symlink") == [("/tmp/lab/host-tools/h/bin/sh", "/bin/sh")]
    assert args.index("--tmpfs") < args.index("--bind") < args.index("--remount-ro")
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert args[args.index("--remount-ro") + 1] == "/"
    assert args[-2:] == ["--chdir", "/tmp/work/out"]


def test_without_user_namespace_capabilities_are_still_dropped():
    args = bwrap.sandbox_options(userns=False)
    assert "--unshare-user" not in args and "--disable-userns" not in args
    assert args[args.index("--cap-drop") + 1] == "ALL"


def test_store_copy_replaces_nix_store():
    args = bwrap.sandbox_options(readonly=[Path("/data/lab")], store=Path("/data/lab/store"))
    assert ("/data/lab/store", "/nix/store") in pairs(args, "--ro-bind")
    assert ("/data/lab", "/data/lab") in pairs(args, "--ro-bind")
    bound = {dst for _, dst in pairs(args, "--ro-bind")}
    assert bound == {"/nix/store", "/data/lab"}


def test_host_root_binds_root_entries_but_nix():
    args = bwrap.sandbox_options(
        readonly=[Path("/nix/store/x-lab"), Path("/usr/x")],
        store=Path("/data/lab/store"),
        host_root=True,
    )
    assert ("/data/lab/store", "/nix/store") in pairs(args, "--ro-bind")
    bound = {dst for _, dst in pairs(args, "--ro-bind")} | {d for _, d in pairs(args, "--symlink")}
    assert "/usr" in bound
    assert "/nix" not in bound and "/proc" not in bound and "/tmp" not in bound
    # under the host's root, /usr/x is visible already; the lab in /nix/store is not
    assert ("/nix/store/x-lab", "/nix/store/x-lab") in pairs(args, "--ro-bind")
    assert ("/usr/x", "/usr/x") not in pairs(args, "--ro-bind")
    for entry in os.scandir("/"):
        if entry.is_symlink():
            assert (os.readlink(entry.path), entry.path) in pairs(args, "--symlink")


def test_command_is_an_argv():
    argv = bwrap.command(Path("/usr/bin/bwrap"), ["--ro-bind", "/", "/"], ["/bin/echo", "a b"])
    assert argv == ["/usr/bin/bwrap", "--ro-bind", "/", "/", "--", "/bin/echo", "a b"]


def test_find_prefers_host_then_host_tools(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "bwrap"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "/var/empty")
    assert bwrap.find(tools) == fake
    assert bwrap.find(None) is None


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")
def test_sandbox_is_read_only_offline_and_powerless(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("a static busybox is needed inside the hermetic sandbox")
    options = bwrap.sandbox_options(
        readonly=[Path(busybox)], writable=[out], links={"/bin/sh": busybox}, chdir=out
    )
    # /tmp is a private tmpfs: writing beside `out` lands there, not on the host
    script = (
        f"touch ok {tmp_path}/nope && ! touch /etc-x 2>/dev/null && test ! -e /usr/lib"
        ' && test "$(grep -c : /proc/net/dev)" = 1'
        " && grep -q 'CapEff:.0000000000000000' /proc/self/status && echo fine"
    )
    result = subprocess.run(
        bwrap.command(Path(shutil.which("bwrap")), options, ["/bin/sh", "-c", script]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "fine", result.stderr
    assert (out / "ok").exists()
    assert not (tmp_path / "nope").exists()
    assert bwrap.probe(Path(shutil.which("bwrap")), options, ["/bin/sh", "-c", ":"], {}) is None
    bad = bwrap.probe(Path(shutil.which("bwrap")), options, ["/usr/bin/true"], {})
    assert bad is not None


# -- the runtime's sandbox for one job ------------------------------------------------------


def _runtime(tmp_path, **kw):

    return Runtime(
        kind=RuntimeKind.BWRAP,
        path="/lab/host-tools/h/bin",
        outputs=str(tmp_path / "outputs"),
        bwrap="/usr/bin/bwrap",
        **kw,
    )


def _spec(inputs=(), gathered=()):

    return JobSpec(
        job="j-x",
        stage="x",
        lab_root="/lab",
        lab_id="l",
        executable="/lab/jobs/j-x/bin/x",
        parameters_file="/lab/jobs/j-x/parameters.json",
        inputs={f"i{n}": p for n, p in enumerate(inputs)},
        gathers={"all": tuple(GatherEntry(job="u", params={}, path=p) for p in gathered)}
        if gathered
        else {},
    )


def test_a_job_sees_only_its_upstream_outputs(tmp_path):
    outputs = tmp_path / "outputs"
    for job in ("up1", "up2", "other"):
        (outputs / job / "out").mkdir(parents=True)
    runtime = _runtime(tmp_path)
    spec = _spec(inputs=[f"{outputs}/up1/out/a/b.csv"], gathered=[f"{outputs}/up2/out/r.json"] * 2)
    argv, env, cwd = runtime.command(spec, tmp_path / "work")
    ro = pairs(argv, "--ro-bind")
    assert (f"{outputs}/up1/out", f"{outputs}/up1/out") in ro
    assert (f"{outputs}/up2/out", f"{outputs}/up2/out") in ro
    assert all("other" not in src for src, _ in ro)
    assert (str(outputs), str(outputs)) not in ro
    assert ("/lab", "/lab") in ro
    assert pairs(argv, "--bind") == [(cwd, cwd)]
    assert dict((b, a) for a, b in pairs(argv, "--symlink")) == {
        "/bin/sh": "/lab/host-tools/h/bin/sh",
        "/usr/bin/env": "/lab/host-tools/h/bin/env",
    }
    assert env["HOME"] == "/homeless-shelter"
    assert runtime.impure == ()


def test_a_wide_gather_sees_the_outputs_directory(tmp_path):
    outputs = tmp_path / "outputs"
    paths = [f"{outputs}/u{n}/out/r.json" for n in range(MAX_INPUT_BINDS + 1)]
    argv, _, _ = _runtime(tmp_path).command(_spec(gathered=paths), tmp_path / "work")
    ro = pairs(argv, "--ro-bind")
    assert (str(outputs), str(outputs)) in ro
    assert not any("/u0/" in src for src, _ in ro)


def test_impure_runtime_binds_and_records_host_paths(tmp_path):
    runtime = _runtime(tmp_path, mount_paths=("/data/x",))
    argv, _, _ = runtime.command(_spec(), tmp_path / "work")
    assert ("/data/x", "/data/x") in pairs(argv, "--ro-bind")
    assert runtime.impure == ("/data/x",)
    assert "NOT reproducible" in (impure_warning(runtime) or "")
    host = _runtime(tmp_path, mount_host_paths=True, mount_paths=("/data/x",))
    argv, _, _ = host.command(_spec(), tmp_path / "work")
    assert ("/usr", "/usr") in pairs(argv, "--ro-bind")
    assert "/bin/sh" not in {d for _, d in pairs(argv, "--symlink")} - {"/bin"}
    assert host.impure == ("/", "/data/x")
    assert "whole file system" in (impure_warning(host) or "")
    assert impure_warning(_runtime(tmp_path)) is None


@pytest.mark.parametrize(
    ("path", "message"),
    [("data", "not an absolute path"), ("/", "use mount_host_paths"), ("/no/such", "does not")],
)
def test_mount_paths_are_checked(path, message):

    with pytest.raises(UsageError, match=message) as info:
        check_mount_paths([path], "--mount-path")
    assert str(info.value).startswith("--mount-path: ")
    assert check_mount_paths(["/tmp", "/tmp/"], "x") == ("/tmp",)


def test_per_run_images_give_each_job_its_runs_image(tmp_path):
    """containerMode "per-run": the job's run picks the image root file system."""
    images = {}
    for name in ("a", "b", "unified"):
        images[name] = tmp_path / "images" / name / "rootfs"
        (images[name] / "bin").mkdir(parents=True)
    runtime = _runtime(
        tmp_path,
        image=str(images["unified"]),
        run_images={"a": str(images["a"]), "b": str(images["b"])},
    )
    for run, image in (("a", "a"), ("b", "b"), ("other", "unified")):
        argv, _, _ = runtime.command(_spec().model_copy(update={"run": run}), tmp_path / "w")
        bound = {p for p in argv if p.startswith(str(tmp_path / "images"))}
        assert bound == {str(images[image] / "bin")}, (run, bound)
