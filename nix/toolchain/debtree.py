"""Relocate a set of Debian packages into one self-contained tree and add it to the Nix store.

Used by assemble.sh (see docs/offline.md, "Relocated Debian trees"):

    debtree.py TREES_JSON CACHE_DIR LAUNCHER GCROOT_DIR OUT_JSON

TREES_JSON describes each tree (seed packages, packages not to follow, extra links, kind).
For every tree the dependency closure of its seeds is resolved with apt (Depends and
Pre-Depends only), the .deb files are downloaded into CACHE_DIR/debs (checked against apt's
sha256), unpacked with `dpkg-deb -x`, /lib /bin /sbin are merged into /usr (as on a
usrmerged system) and the tree root is the former /usr (plus etc/). Then:

- every dynamic ELF gets an $ORIGIN-relative DT_RPATH naming the tree directories of its
  NEEDED libraries, and a missing library fails the assembly;
- every dynamic program is moved to .NAME-real and replaced by the static launcher (see
  launcher.c) with a relative .repx-ld.so link to the tree's dynamic loader;
- absolute symlinks into the tree become relative, those that point outside it are dropped;
- Python trees: site packages of each python3-* package go to site/<package>/ (so that an
  interpreter sees only the packages it is given), host paths (zoneinfo, mpl-data,
  matplotlibrc) are rewritten and .pyc files are compiled with unchecked hashes.

The tree is added with `nix-store --add-fixed --recursive sha256` (the path a fixed-output
derivation with that hash has, which packages.nix declares), a GC root is kept in
GCROOT_DIR, and the staging copy is deleted. A tree whose inputs (deb files, this script,
the launcher, its description) are unchanged and whose store path is still valid is reused
(CACHE_DIR/trees/NAME.json records the last one).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

ARCH_LIBDIR: Final = "lib/x86_64-linux-gnu"
LDSO: Final = f"{ARCH_LIBDIR}/ld-linux-x86-64.so.2"
PY_SITE: Final = "lib/python3/dist-packages"
FORMAT: Final = "repx-debtree/1"


def log(msg: str) -> None:
    print(f"assemble: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    print(f"assemble: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(argv: list[str], **kw: Any) -> str:
    proc = subprocess.run(argv, check=False, text=True, capture_output=True, **kw)
    if proc.returncode != 0:
        die(f"{' '.join(argv[:3])} … failed: {proc.stderr.strip()[-2000:]}")
    return str(proc.stdout)


# --- dependency closure ----------------------------------------------------------------------
def parse_depends(text: str) -> dict[str, list[list[str]]]:
    """`apt-cache depends --recurse` output -> package -> list of alternative groups.

    A virtual dependency `<name>` is replaced by its providers (listed below it)."""
    graph: dict[str, list[list[str]]] = {}
    cur: str | None = None
    group: list[str] = []
    last: list[str] | None = None  # the alternatives of the last dependency line
    for line in text.splitlines():
        if not line.startswith(" "):
            cur = line.strip()
            graph.setdefault(cur, [])
            group, last = [], None
            continue
        m = re.match(r"^ (\|| )(Depends|PreDepends): (.+)$", line)
        if m and cur is not None:
            name = m.group(3).strip()
            alts = [] if name.startswith("<") else [name.split(":")[0]]
            group.extend(alts)
            last = group
            if m.group(1) != "|":
                graph[cur].append(group)
                group = []
            continue
        if line.startswith("    ") and last is not None:
            # provider of a virtual package: an alternative of that dependency
            last.append(line.strip().split(":")[0])
    return graph


def closure(
    seeds: list[str], exclude: set[str], prefer: list[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """The packages to unpack (sorted) and, for each, the chosen packages it depends on."""
    out = run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *seeds,
        ]
    )
    graph = parse_depends(out)
    chosen: list[str] = []
    deps: dict[str, list[str]] = {}
    seen: set[str] = set()
    todo = list(seeds)
    while todo:
        p = todo.pop(0)
        if p in seen or p in exclude:
            continue
        seen.add(p)
        if p not in graph:
            die(f"apt knows no package {p}")
        chosen.append(p)
        deps[p] = []
        for alts in graph[p]:
            have = next((a for a in alts if a in seen and a not in exclude), None)
            pick = have or next((a for a in prefer if a in alts), None)
            pick = pick or next((a for a in alts if a in graph and a not in exclude), None)
            if pick is not None:
                if pick not in deps[p]:
                    deps[p].append(pick)
                todo.append(pick)
    return sorted(chosen), {
        p: sorted(d for d in ds if d in seen and d not in exclude) for p, ds in deps.items()
    }


def deb_info(pkgs: list[str]) -> dict[str, dict[str, str]]:
    """Candidate version, file name and sha256 of each package (from apt's lists)."""
    info = _apt_show(pkgs)
    # An installed version that no package list offers (the image was upgraded from lists
    # this machine has not fetched yet) has no Filename: refresh the lists once when allowed.
    if any("Filename" not in i for i in info.values()) and os.geteuid() == 0:
        run(["apt-get", "update", "-q"])
        info = _apt_show(pkgs)
    stale = sorted(p for p, i in info.items() if "Filename" not in i)
    if stale:
        die(f"apt offers no download of the installed {' '.join(stale)} (run apt-get update)")
    return info


def _apt_show(pkgs: list[str]) -> dict[str, dict[str, str]]:
    out = run(["apt-cache", "show", "--no-all-versions", *pkgs])
    info: dict[str, dict[str, str]] = {}
    for block in out.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "") and ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        if "Package" in fields:
            info.setdefault(fields["Package"], fields)
    missing = [p for p in pkgs if p not in info]
    if missing:
        die(f"apt has no candidate for {' '.join(missing)} (apt-get update?)")
    return info


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_debs(info: dict[str, dict[str, str]], debdir: Path) -> dict[str, Path]:
    debdir.mkdir(parents=True, exist_ok=True)
    files = {p: debdir / Path(i["Filename"]).name for p, i in info.items()}
    want = [p for p, f in files.items() if not (f.exists() and sha256_file(f) == info[p]["SHA256"])]
    if want:
        log(f"downloading {len(want)} Debian packages")
        argv = ["apt-get", "download", "-q", *(f"{p}={info[p]['Version']}" for p in want)]
        if subprocess.run(argv, cwd=debdir, check=False, capture_output=True).returncode != 0:
            # stale package lists (the mirror moved on): refresh them once when allowed to
            if os.geteuid() == 0:
                run(["apt-get", "update", "-q"])
            run(argv, cwd=debdir)
    for p, f in files.items():
        # apt-get download names files with the epoch escaped (%3a); apt's Filename has none.
        if not f.exists():
            alt = [
                x
                for x in debdir.glob(f"{p}_*_{info[p]['Architecture']}.deb")
                if sha256_file(x) == info[p]["SHA256"]
            ]
            if not alt:
                die(f"download of {p} failed")
            alt[0].rename(f)
        if sha256_file(f) != info[p]["SHA256"]:
            die(f"{f} does not have the sha256 apt lists")
    return files


# --- relocation ----------------------------------------------------------------------------
def is_elf(p: Path) -> bool:
    """An ELF executable or shared object (not an object file or archive)."""
    try:
        with p.open("rb") as f:
            head = f.read(18)
    except OSError:
        return False
    return len(head) == 18 and head[:4] == b"\x7fELF" and head[16] in (2, 3)


def elf_info(p: Path) -> tuple[bool, list[str]]:
    """(has PT_INTERP, NEEDED sonames) via readelf-free parsing by patchelf."""
    needed = run(["patchelf", "--print-needed", str(p)]).split()
    interp = (
        subprocess.run(
            ["patchelf", "--print-interpreter", str(p)], check=False, capture_output=True, text=True
        ).returncode
        == 0
    )
    return interp, needed


def merge_usr(root: Path, staging: Path) -> None:
    """Move staging/{usr,lib,bin,sbin,lib64,etc,...} into root (root = the former /usr)."""
    for top in sorted(staging.iterdir()):
        if top.name == "usr":
            dst = root
        elif top.name in ("lib", "bin", "sbin", "lib64", "libexec", "etc", "var", "opt"):
            dst = root / top.name
        else:
            continue
        copy_merge(top, dst)


def copy_merge(src: Path, dst: Path) -> None:
    if src.is_symlink() or not src.is_dir():
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            if dst.is_dir() and not dst.is_symlink():
                return  # a real directory wins over a link (usrmerge compatibility links)
            dst.unlink()
        src.rename(dst)
        return
    if dst.is_symlink():
        dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        copy_merge(child, dst / child.name)


def host_to_tree(target: str) -> str:
    """Where an absolute Debian path lives in a tree (root = /usr)."""
    t = target
    for pre in ("/usr/", "/lib/", "/bin/", "/sbin/", "/lib64/", "/etc/"):
        if t.startswith(pre):
            return t[len("/usr/") :] if pre == "/usr/" else t[1:]
    return ""


def fix_symlinks(root: Path) -> int:
    dropped = 0
    for p in sorted(root.rglob("*")):
        if not p.is_symlink():
            continue
        t = str(p.readlink())
        if t.startswith("/"):
            rel = host_to_tree(t)
            dst = root / rel if rel else None
            if dst is not None and (dst.exists() or dst.is_symlink()):
                p.unlink()
                p.symlink_to(os.path.relpath(dst, p.parent))
                continue
            p.unlink()
            dropped += 1
        elif not p.exists():
            p.unlink()
            dropped += 1
    return dropped


def relocate_elves(root: Path, launcher: Path, extra_rpath: list[str]) -> dict[str, int]:
    elves = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and is_elf(p)]
    sonames: dict[str, Path] = {}
    for p in sorted(root.rglob("*.so*")):
        # the architecture directory wins over other files of the same name
        if p.exists() and (p.name not in sonames or str(p.parent.relative_to(root)) == ARCH_LIBDIR):
            sonames[p.name] = p
    ldso = root / LDSO
    if not ldso.exists():
        die(f"{root.name}: no {LDSO} (libc6 missing from the tree)")
    missing: dict[str, set[str]] = {}
    programs = 0
    for p in elves:
        if p.resolve() == ldso.resolve():
            continue
        interp, needed = elf_info(p)
        dirs: list[str] = []
        for so in needed:
            if so in sonames:
                d = os.path.relpath(sonames[so].parent, p.parent)
                d = "$ORIGIN" if d == "." else f"$ORIGIN/{d}"
                if d not in dirs:
                    dirs.append(d)
            else:
                missing.setdefault(so, set()).add(str(p.relative_to(root)))
        for extra in extra_rpath if interp else []:
            d = f"$ORIGIN/{os.path.relpath(root / extra, p.parent)}"
            if d not in dirs:
                dirs.append(d)
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IWUSR)
        if dirs:
            run(["patchelf", "--force-rpath", "--set-rpath", ":".join(dirs), str(p)])
        elif needed:
            run(["patchelf", "--remove-rpath", str(p)])
        if interp and ".so" not in p.name:
            real = p.with_name(f".{p.name}-real")
            p.rename(real)
            shutil.copyfile(launcher, p)
            p.chmod(0o755)
            real.chmod(0o755)
            link = p.parent / ".repx-ld.so"
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(ldso, p.parent))
            programs += 1
    if missing:
        lines = [
            f"  {so} (needed by {', '.join(sorted(users)[:3])})"
            for so, users in sorted(missing.items())
        ]
        die(f"{root.name}: libraries not in the tree:\n" + "\n".join(lines))
    return {"elf": len(elves), "programs": programs}


def python_fixups(root: Path, site_pkgs: list[str]) -> None:
    """Host-absolute paths in Debian's Python packages, rewritten relative to the tree."""
    tzpath = root / "lib/python3.11/zoneinfo/_tzpath.py"
    if tzpath.exists():
        s = tzpath.read_text()
        s = s.replace(
            'sysconfig.get_config_var("TZPATH")',
            'os.path.join(__import__("sys").base_prefix, "share", "zoneinfo")',
        )
        tzpath.write_text(s)
    zone_join = re.compile(
        r"""os\.path\.join\(\s*['"]/usr['"]\s*,\s*['"]share['"]\s*,\s*['"]zoneinfo['"]"""
    )
    zone_lit = re.compile(r"""(['"])/usr/share/zoneinfo""")
    base = '__import__("os").path.join(__import__("sys").base_prefix, '
    mpl_re = re.compile(r"""['"]/usr/share/matplotlib/mpl-data['"]""")
    rc_re = re.compile(r"""['"]/etc/matplotlibrc['"]""")
    for sub in site_pkgs:
        for py in sorted((root / "site" / sub).rglob("*.py")):
            s = py.read_text(errors="surrogateescape")
            t = zone_join.sub(base + '"share", "zoneinfo"', s)
            t = zone_lit.sub(r'__import__("sys").base_prefix + \1/share/zoneinfo', t)
            t = mpl_re.sub(base + '"share", "matplotlib", "mpl-data")', t)
            t = rc_re.sub(base + '"etc", "matplotlibrc")', t)
            if t != s:
                py.write_text(t, errors="surrogateescape")
    rc = root / "etc/matplotlibrc"
    if rc.exists():
        # Headless by default, like nixpkgs' matplotlib without GUI backends.
        s = re.sub(r"^#?\s*backend\s*:.*$", "backend: Agg", rc.read_text(), count=1, flags=re.M)
        rc.write_text(s)


def split_python_site(root: Path, pkg: str, staging: Path) -> list[str]:
    """Move a python3-* package's dist-packages into site/<pkg>; return its top-level names."""
    src = staging / "usr" / PY_SITE
    if not src.is_dir():
        return []
    dst = root / "site" / pkg
    dst.mkdir(parents=True, exist_ok=True)
    names = []
    for child in sorted(src.iterdir()):
        copy_merge(child, dst / child.name)
        names.append(child.name)
    shutil.rmtree(src)
    return names


def list_programs(staging: Path) -> list[str]:
    names = []
    for d in ("usr/bin", "bin", "usr/sbin", "sbin"):
        if (staging / d).is_dir():
            names += [p.name for p in (staging / d).iterdir()]
    return sorted(set(names))


def build_tree(name: str, spec: dict[str, Any], cache: Path, launcher: Path) -> dict[str, Any]:
    seeds: list[str] = spec["seeds"]
    pkgs, deps = closure(seeds, set(spec.get("exclude", [])), spec.get("prefer", []))
    info = deb_info(pkgs)
    debs = fetch_debs(info, cache / "debs")
    h = hashlib.sha256()
    for part in (
        FORMAT,
        Path(__file__).read_bytes(),
        launcher.read_bytes(),
        json.dumps(spec, sort_keys=True),
    ):
        h.update(part if isinstance(part, bytes) else part.encode())
    for p in pkgs:
        h.update(f"{p} {info[p]['SHA256']}\n".encode())
    key = h.hexdigest()
    return {"pkgs": pkgs, "deps": deps, "info": info, "debs": debs, "key": key}


def assemble_tree(
    name: str, spec: dict[str, Any], plan: dict[str, Any], launcher: Path, work: Path
) -> dict[str, Any]:
    t0 = time.monotonic()
    root = work / spec["storeName"]
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    is_python = spec.get("kind") == "python"
    per_deb: dict[str, Any] = {}
    for p in plan["pkgs"]:
        staging = Path(tempfile.mkdtemp(dir=work))
        run(["dpkg-deb", "-x", str(plan["debs"][p]), str(staging)])
        entry: dict[str, Any] = {
            "version": plan["info"][p]["Version"],
            "programs": list_programs(staging),
            "depends": plan["deps"][p],
        }
        if is_python and p.startswith("python3-") and p not in spec.get("stdlibDebs", []):
            into = spec.get("siteMerge", {}).get(p, p)
            names = split_python_site(root, into, staging)
            if into == p:
                entry["site"] = names
        merge_usr(root, staging)
        shutil.rmtree(staging)
        per_deb[p] = entry
    for drop in spec.get("drop", []):
        for p in sorted(root.glob(drop)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    for link, target in sorted(spec.get("links", {}).items()):
        lp = root / link
        lp.parent.mkdir(parents=True, exist_ok=True)
        if lp.is_symlink() or lp.exists():
            lp.unlink()
        lp.symlink_to(target)
    dropped = fix_symlinks(root)
    if is_python:
        python_fixups(root, [p for p, e in per_deb.items() if e.get("site")])
    stats = relocate_elves(root, launcher, spec.get("programRpath", []))
    if is_python:
        py = root / "bin" / "python3.11"
        dirs = [str(root / "lib/python3.11")] + [
            str(root / "site" / p) for p, e in per_deb.items() if e.get("site")
        ]
        # Deterministic: no pyc written as a side effect of compileall's own imports (-B;
        # those would be timestamp-based), every file compiled afresh (-f), a fixed hash seed.
        env = {
            "PATH": "/nonexistent",
            "HOME": str(work),
            "PYTHONHASHSEED": "0",
        }
        run(
            [
                str(py),
                "-B",  # not -I: that would ignore PYTHONHASHSEED (set order in constants)
                "-s",
                "-m",
                "compileall",
                "-q",
                "-f",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                str(root),
                "-p",
                "/",
                *dirs,
            ],
            env=env,
        )
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    log(
        f"{name}: {len(plan['pkgs'])} debs, {stats['elf']} ELF files,"
        f" {stats['programs']} launchers,"
        f" {dropped} host links dropped ({time.monotonic() - t0:.1f} s)"
    )
    return {"root": root, "debs": per_deb}


def store_add(root: Path) -> tuple[str, str]:
    path = run(["nix-store", "--add-fixed", "--recursive", "sha256", str(root)]).strip()
    info = json.loads(run(["nix", "path-info", "--json", path]))
    nar = info[0]["narHash"]
    return path, nar


def valid(path: str) -> bool:
    return (
        subprocess.run(
            ["nix-store", "--check-validity", path], check=False, capture_output=True
        ).returncode
        == 0
    )


def keep_root(path: str, gcroots: Path, name: str) -> None:
    gcroots.mkdir(parents=True, exist_ok=True)
    link = gcroots / name
    if link.is_symlink() and str(link.readlink()) == path:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    run(["nix-store", "--add-root", str(link), "--indirect", "--realise", path])


def main() -> None:
    trees_json, cache_s, launcher_s, gcroots_s, out_json = sys.argv[1:6]
    trees: dict[str, Any] = json.loads(Path(trees_json).read_text())
    cache, launcher, gcroots = Path(cache_s), Path(launcher_s), Path(gcroots_s)
    work = cache / "work"
    records = cache / "trees"
    work.mkdir(parents=True, exist_ok=True)
    records.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for name, spec in trees.items():
        plan = build_tree(name, spec, cache, launcher)
        record = records / f"{name}.json"
        try:
            prev = json.loads(record.read_text())
        except (OSError, ValueError):
            prev = {}
        if prev.get("key") == plan["key"] and valid(prev.get("path", "/nonexistent")):
            keep_root(prev["path"], gcroots, name)
            result[name] = prev
            log(f"{name}: unchanged ({prev['path']})")
            continue
        built = assemble_tree(name, spec, plan, launcher, work)
        t0 = time.monotonic()
        path, nar = store_add(built["root"])
        keep_root(path, gcroots, name)
        size = int(json.loads(run(["nix", "path-info", "--json", path]))[0]["narSize"])
        shutil.rmtree(built["root"])
        log(f"{name}: {path} ({size / 2**20:.0f} MiB, added in {time.monotonic() - t0:.1f} s)")
        result[name] = {
            "key": plan["key"],
            "path": path,
            "name": spec["storeName"],
            "narHash": nar,
            "narSize": size,
            "debs": built["debs"],
        }
        record.write_text(json.dumps(result[name], indent=1, sort_keys=True) + "\n")
    Path(out_json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
