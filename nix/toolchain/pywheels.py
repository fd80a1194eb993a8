"""Add pinned PyPI wheels to the Nix store as one tree of the offline toolchain.

Used by assemble.sh (see docs/offline.md, "Python packages from PyPI"):

    pywheels.py REQUIREMENTS CACHE_DIR PYTHON GCROOT_DIR TREES_JSON

REQUIREMENTS (python-wheels.txt) pins every wheel with its sha256. Wheels are taken from
CACHE_DIR/pywheels when there with the pinned hash, else downloaded with pip (``$PIP``,
default ``python3 -m pip``) for CPython 3.11 on manylinux x86_64, and checked. Each wheel is
unpacked into ``site/<name>/`` of the tree (``name`` as nixpkgs names it: lowercase, ``-``);
its modules are compiled with PYTHON (the toolchain's interpreter) with unchecked hashes, as
the Debian trees are. The tree is added with ``nix-store --add-fixed --recursive sha256``; its
record (path, narHash, and per wheel its version, site entries and dependencies) is added to
TREES_JSON as the tree ``pywheels``. An unchanged tree (same wheels, script, interpreter)
whose store path is still valid is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
from debtree import keep_root, log, run, store_add, valid

NAME: Final = "pywheels"
STORE_NAME: Final = "repx-pypi-wheels"
_PIN: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")
_PLATFORMS: Final = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def die(msg: str) -> None:
    sys.stderr.write(f"assemble: error: {msg}\n")
    sys.exit(1)


def canonical(name: str) -> str:
    """A distribution name as nixpkgs' python3Packages attribute (PEP 503 normalised)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, tuple[str, str]]:
    pins: dict[str, tuple[str, str]] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        if m is None:
            die(f"{path}:{n}: expected 'NAME==VERSION --hash=sha256:HEX', got '{line}'")
        pins[canonical(m[1])] = (m[2], m[3])
    return pins


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_wheels(dl: Path, pins: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """Pinned name -> a wheel of dl with the pinned hash (those found)."""
    found: dict[str, Path] = {}
    for whl in sorted(dl.glob("*.whl")):
        name = canonical(whl.name.split("-", 1)[0])
        if name in pins and name not in found and sha256_file(whl) == pins[name][1]:
            found[name] = whl
    return found


def download(requirements: Path, dl: Path) -> None:
    pip = shlex.split(os.environ.get("PIP") or "python3 -m pip")
    argv = [*pip, "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    argv += ["--only-binary=:all:", "--require-hashes", "--python-version", "3.11"]
    argv += ["--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for platform in _PLATFORMS:
        argv += ["--platform", platform]
    log(f"downloading the Python wheels of {requirements.name} from PyPI")
    run([*argv, "--dest", str(dl), "-r", str(requirements)])


def requires(metadata: str, known: set[str]) -> list[str]:
    """Dependencies (Requires-Dist without an extra) among the pinned wheels."""
    deps: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            if not line.strip():
                break  # the body (long description) starts
            continue
        spec = line.split(":", 1)[1]
        if re.search(r"""extra\s*==""", spec):
            continue
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if m and canonical(m[1]) in known and canonical(m[1]) not in deps:
            deps.append(canonical(m[1]))
    return sorted(deps)


def unpack(wheels: dict[str, Path], root: Path) -> dict[str, dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for name, whl in sorted(wheels.items()):
        site = root / "site" / name
        site.mkdir(parents=True)
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
            meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = z.read(meta_name).decode("utf-8", "replace")
        # scripts and headers of <dist>.data/ are not modules: not needed by an interpreter
        for data in site.glob("*.data"):
            shutil.rmtree(data)
        per[name] = {
            "version": whl.name.split("-")[1],
            "wheel": whl.name,
            "site": sorted(p.name for p in site.iterdir()),
            "depends": requires(metadata, set(wheels)),
        }
    return per


def compile_tree(python: str, root: Path, home: Path) -> None:
    env = {"PATH": "/nonexistent", "HOME": str(home), "PYTHONHASHSEED": "0"}
    argv = [python, "-B", "-s", "-m", "compileall", "-q", "-f", "-j", "0"]
    argv += ["--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", "/"]
    run([*argv, str(root / "site")], env=env)
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
        elif p.is_file():
            p.chmod(0o644)


def main() -> None:
    req_s, cache_s, python, gcroots_s, trees_s = sys.argv[1:6]
    requirements, cache, gcroots, trees_json = (
        Path(req_s),
        Path(cache_s),
        Path(gcroots_s),
        Path(trees_s),
    )
    pins = read_pins(requirements)
    dl = cache / "pywheels"
    dl.mkdir(parents=True, exist_ok=True)
    wheels = find_wheels(dl, pins)
    if set(wheels) != set(pins):
        download(requirements, dl)
        wheels = find_wheels(dl, pins)
        missing = sorted(set(pins) - set(wheels))
        if missing:
            die(f"no wheel with the pinned sha256 for: {', '.join(missing)}")
    key = hashlib.sha256(
        json.dumps(
            {
                "script": sha256_file(Path(__file__)),
                "pins": pins,
                "python": os.path.realpath(python),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    record = cache / "trees" / f"{NAME}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    try:
        prev = json.loads(record.read_text())
    except (OSError, ValueError):
        prev = {}
    if prev.get("key") == key and valid(prev.get("path", "/nonexistent")):
        keep_root(prev["path"], gcroots, NAME)
        log(f"{NAME}: unchanged ({prev['path']})")
        result = prev
    else:
        work = Path(tempfile.mkdtemp(prefix="repx-pywheels.", dir=cache))
        try:
            root = work / STORE_NAME
            root.mkdir()
            per = unpack(wheels, root)
            compile_tree(python, root, work)
            path, nar = store_add(root)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        keep_root(path, gcroots, NAME)
        size = int(json.loads(run(["nix", "path-info", "--json", path]))[0]["narSize"])
        log(f"{NAME}: {path} ({len(per)} wheels, {size / 2**20:.0f} MiB)")
        result = {
            "key": key,
            "path": path,
            "name": STORE_NAME,
            "narHash": nar,
            "narSize": size,
            "debs": {},
            "wheels": per,
        }
        record.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    trees = json.loads(trees_json.read_text())
    trees[NAME] = result
    trees_json.write_text(json.dumps(trees, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
