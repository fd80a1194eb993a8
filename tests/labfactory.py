"""Write hand-made labs that follow docs/lab-format.md, for tests and benchmarks.

Typical use::

    from labfactory import write_lab, sweep_runs, pipeline_runs

    lab = write_lab(tmp_path / "lab")                            # 2 runs, 14 jobs
    lab = write_lab(tmp_path / "lab", sweep_runs(10_000))        # one stage, 10,000 jobs
    lab = write_lab(tmp_path / "lab", pipeline_runs(100))        # 100 -> 100 -> 1 (gather)

Runs are described with :class:`RunSpec`/:class:`StageSpec`; expansion follows the
architecture's rules in a simplified way: a stage's axes are its own parameters plus the
axes of its (non-gather) upstream stages; gathered and ``from_run`` inputs take every
matching upstream job. Manifests are laid out as the Nix library writes them: stages by
name, jobs by id (which is not a dependency order: consumers must not rely on it), each
job's outputs and inputs sorted as Nix sorts them, and resource hints normalised
(``{"mem": "1G"}`` is written as ``{"mem": 1024}``). Parameters (of a run, of a job) and
the revision's ``runs`` stay in declaration order although Nix sorts them by name too
(tests read them back in that order). Every job's
``bin/<stage>`` is a real ``/bin/sh`` script that
honours the job contract (``<out-dir> <inputs.json> <parameters.json>``): by default it
copies its parameters into each declared output. After mutating files, call
:func:`refresh_integrity` to recompute ``files`` (or don't, to test integrity errors).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repx.lab import hints

NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
LAB_METADATA = "lab/lab-metadata.json"
JOB_INDEX = "lab/job-index.tsv"
REVISION_METADATA = "revision/metadata.json"
HOST_TOOLS = ("sh", "bash", "cat", "cp", "mkdir", "jq", "rsync", "bwrap", "env")
#: Tools that stay links to the host's (busybox has no equivalent, or tests need the real one).
_HOST_ONLY = frozenset({"bash", "jq", "rsync", "bwrap"})


@dataclass(frozen=True)
class StageSpec:
    """A stage of a factory run."""

    name: str
    params: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    gather: tuple[str, ...] = ()
    from_run: tuple[tuple[str, str], ...] = ()
    #: inter-run inputs: ``store__base`` and ``metadata__<run>`` for each run named here
    store_base: bool = False
    metadata_of: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("result.json",)
    script: str | None = None
    resources: Mapping[str, Any] = field(default_factory=lambda: {"cpus": 1})


@dataclass(frozen=True)
class RunSpec:
    """A run of a factory lab: its parameter axes and stages (in dependency order)."""

    name: str
    stages: tuple[StageSpec, ...]
    parameters: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    zip_groups: tuple[tuple[str, ...], ...] = ()
    depends_on: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FactoryLab:
    """A written lab and what the factory put in it."""

    root: Path
    lab_id: str
    run_hashes: dict[str, str]
    run_jobs: dict[str, list[str]]
    stage_jobs: dict[tuple[str, str], list[str]]

    @property
    def job_ids(self) -> list[str]:
        """Every job id, in run then stage order (duplicates across runs removed)."""
        return list(dict.fromkeys(j for jobs in self.run_jobs.values() for j in jobs))

    def manifest_path(self, run: str) -> Path:
        """Path of a run's manifest."""
        return self.root / "revision" / f"{self.run_hashes[run]}.json"

    def path(self, rel: str) -> Path:
        """Absolute path of a file of the lab."""
        return self.root / rel


# -- ready-made run sets ----------------------------------------------------------------


def default_runs() -> tuple[RunSpec, ...]:
    """Two runs, 14 jobs: simulation (6 simulate -> 6 stats -> 1 aggregate) and report."""
    simulation = RunSpec(
        name="simulation",
        parameters={"seed": [1, 2, 3], "noise": [0.1, 0.5]},
        stages=(
            StageSpec("simulate", params=("seed", "noise"), outputs=("samples.csv",)),
            StageSpec("stats", after=("simulate",), outputs=("stats.json",)),
            StageSpec("aggregate", gather=("stats",), outputs=("summary.csv",)),
        ),
    )
    report = RunSpec(
        name="report",
        depends_on={"simulation": "hard"},
        stages=(
            StageSpec("plot", from_run=(("simulation", "aggregate"),), outputs=("plots/a.txt",)),
        ),
    )
    return (simulation, report)


def sweep_runs(n_jobs: int, *, name: str = "sweep") -> tuple[RunSpec, ...]:
    """One run with one stage swept over ``n_jobs`` seeds: exactly ``n_jobs`` jobs."""
    return (
        RunSpec(
            name=name,
            parameters={"seed": list(range(n_jobs))},
            stages=(StageSpec("simulate", params=("seed",)),),
        ),
    )


def pipeline_runs(width: int) -> tuple[RunSpec, ...]:
    """One run: ``width`` simulate jobs -> ``width`` stats jobs -> 1 aggregate (2w+1 jobs)."""
    return (
        RunSpec(
            name="pipeline",
            parameters={"seed": list(range(width))},
            stages=(
                StageSpec("simulate", params=("seed",)),
                StageSpec("stats", after=("simulate",)),
                StageSpec("aggregate", gather=("stats",)),
            ),
        ),
    )


# -- writing ------------------------------------------------------------------------------


def write_lab(
    root: Path,
    runs: Sequence[RunSpec] | None = None,
    *,
    git_hash: str = "unknown",
    lab_version: str = "0.1.0",
    host_tools: bool = True,
    static_tools: bool = False,
) -> FactoryLab:
    """Write a complete, valid lab into ``root`` (created) and return what it holds.

    ``static_tools``: host-tools from a static busybox copied into the lab (sh, cat, env…),
    so that jobs run in the hermetic bwrap sandbox; otherwise links to the host's programs,
    which only the native runtime (or an impure run) can start.
    """
    runs = tuple(runs) if runs is not None else default_runs()
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("lab", "revision", "jobs", "store", "readme"):
        (root / sub).mkdir(exist_ok=True)
    tools_rel = _write_host_tools(root, enabled=host_tools, static=static_tools)

    state = _State()
    run_jobs: dict[str, list[str]] = {}
    run_hashes: dict[str, str] = {}
    run_entries: dict[str, Any] = {}
    for run in runs:
        manifest, jobs = _expand_run(run, state)
        run_hash = _base32_hash(f"run\0{run.name}\0{_canonical(manifest)}")
        manifest["hash"] = run_hash
        state.run_hashes[run.name] = run_hash
        manifest_rel = f"revision/{run_hash}.json"
        _write_text(root / manifest_rel, manifest_text(manifest))
        for job_id, job in jobs.items():
            _write_job(root, job_id, job, state.scripts[job["stage"]])
        run_hashes[run.name] = run_hash
        run_jobs[run.name] = list(jobs)
        run_entries[run.name] = {
            "manifest": manifest_rel,
            "hash": run_hash,
            "depends_on": dict(run.depends_on),
            "job_count": len(jobs),
            "stages": [s.name for s in run.stages],
        }

    revision = {
        "format": "repx-revision/1",
        "runs": run_entries,
        "run_order": _run_order(runs),
        "groups": {"all": [r.name for r in runs]},
    }
    _write_text(root / REVISION_METADATA, json.dumps(revision, indent=1) + "\n")
    all_jobs = list(dict.fromkeys(j for jobs in run_jobs.values() for j in jobs))
    _write_text(
        root / "readme" / "README.md",
        "# Factory lab\n\n" + "".join(f"- {r.name}: {len(run_jobs[r.name])} jobs\n" for r in runs),
    )
    metadata = {
        "format": "repx-lab/1",
        "lab_version": lab_version,
        "repx_version": "0.1.0",
        "git_hash": git_hash,
        "metadata": REVISION_METADATA,
        "host_tools": tools_rel,
        "store": "store",
        "store_paths": [],
        "readme": "readme/README.md",
        "container_mode": "none",
        "job_count": len(all_jobs),
        "files": [],
    }
    _write_text(root / LAB_METADATA, json.dumps(metadata))
    write_job_index(root)
    refresh_integrity(root)
    lab_id = lab_id_of(root)
    return FactoryLab(root, lab_id, run_hashes, run_jobs, state.stage_jobs)


def refresh_integrity(root: Path) -> None:
    """Recompute the integrity list and the lab id of ``lab/lab-metadata.json`` from disk.

    Writes what ``nix/lib/build-lab.sh`` writes: ``files`` (sha256, executable bit),
    ``symlinks``, ``empty_dirs``, and the lab id hashed from the rest of the file.
    """
    meta_path = root / LAB_METADATA
    metadata = json.loads(meta_path.read_bytes())
    digests: dict[bytes, str] = {}
    files, symlinks, empty_dirs = [], [], []
    for rel, kind in sorted(_entries(root)):
        path = root / rel
        if rel == LAB_METADATA:
            continue
        if kind == "symlink":
            symlinks.append({"path": rel, "target": os.readlink(path)})
        elif kind == "empty_dir" and rel != "lab":
            empty_dirs.append(rel)
        elif kind == "file":
            data = path.read_bytes()
            digest = digests.get(data)
            if digest is None:
                digest = digests[data] = hashlib.sha256(data).hexdigest()
            entry: dict[str, Any] = {"path": rel, "sha256": digest}
            if path.lstat().st_mode & 0o100:
                entry["executable"] = True
            files.append(entry)
    metadata.pop("lab_id", None)
    metadata.update(
        integrity="repx-integrity/1", files=files, symlinks=symlinks, empty_dirs=empty_dirs
    )
    write_metadata(root, metadata)


def write_metadata(root: Path, metadata: dict[str, Any]) -> str:
    """Write ``lab/lab-metadata.json`` with the lab id of its content; return the id."""
    body = json.dumps({k: v for k, v in metadata.items() if k != "lab_id"}).encode()
    digest = hashlib.sha256(b"repx-lab-id/1\0" + body).hexdigest()
    lab_id = _hash32(digest)
    (root / LAB_METADATA).write_bytes(b'{"lab_id":"' + lab_id.encode() + b'",' + body[1:] + b"\n")
    return lab_id


def lab_id_of(root: Path) -> str:
    """The lab id written in ``lab/lab-metadata.json``."""
    return str(json.loads((root / LAB_METADATA).read_bytes())["lab_id"])


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    """Load a JSON file, let ``change`` mutate it in place, and write it back.

    A run manifest is written back as the lab builder lays it out and the lab's job index
    rewritten (when the edit leaves no jobs object to lay out, the index is removed: the
    lab reads as one without index)."""
    data = json.loads(path.read_bytes())
    change(data)  # the return value is ignored: lambdas may call dict.pop freely
    root = path.parent.parent
    if path.parent.name != "revision" or path.name == "metadata.json":
        path.write_text(json.dumps(data, indent=1) + "\n")
    elif isinstance(data, dict) and isinstance(data.get("jobs"), dict):
        path.write_text(manifest_text(data))
        write_job_index(root)
    else:
        path.write_text(json.dumps(data, indent=1) + "\n")
        (root / JOB_INDEX).unlink(missing_ok=True)


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """A run manifest as the lab builder writes it: the jobs last, one per line
    (``lab/job-index.tsv`` points into those lines)."""

    def dumps(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))  # as Nix's toJSON

    top = dumps({k: v for k, v in manifest.items() if k != "jobs"})
    lines = [f"{dumps(job_id)}:{dumps(job)}" for job_id, job in manifest["jobs"].items()]
    return top[:-1] + ',"jobs":{\n' + ",\n".join(lines) + "\n}}\n"


def write_job_index(root: Path) -> None:
    """Write ``lab/job-index.tsv`` from the manifests as they are on disk (what
    ``nix/lib/build-lab.sh`` does: each job line's byte range)."""
    revision = json.loads((root / REVISION_METADATA).read_bytes())
    rows = ["repx-job-index/1"]
    for entry in revision["runs"].values():
        rel = entry["manifest"]
        at = 0
        for line in (root / rel).read_bytes().split(b"\n"):
            if line.startswith(b'"'):
                end = len(line) - line.endswith(b",")
                start = line.index(b'":') + 2
                job = json.loads(line[: start - 1])
                reads = " ".join(
                    sorted(
                        {i.get("job", "") for i in json.loads(line[start:end]).get("inputs", [])}
                        - {""}
                    )
                )
                rows.append(f"{job}\t{rel}\t{at + start}\t{end - start}\t{reads}")
            at += len(line) + 1
    _write_text(root / JOB_INDEX, "\n".join(rows) + "\n")


def nix_base32(data: bytes) -> str:
    """Encode bytes in Nix's base-32 (as in store path hashes)."""
    length = (len(data) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        bit = n * 5
        i, j = divmod(bit, 8)
        value = data[i] >> j
        if i + 1 < len(data):
            value |= data[i + 1] << (8 - j)
        chars.append(NIX_BASE32[value & 0x1F])
    return "".join(chars)


# -- internals --------------------------------------------------------------------------


@dataclass
class _State:
    """What earlier runs and stages produced, for resolving later inputs."""

    stage_jobs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    stage_outputs: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    combos: dict[str, dict[str, int]] = field(default_factory=dict)
    stage_axes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    by_combo: dict[tuple[str, str], dict[tuple[int, ...], str]] = field(default_factory=dict)
    scripts: dict[str, bytes] = field(default_factory=dict)
    run_hashes: dict[str, str] = field(default_factory=dict)


def _expand_run(run: RunSpec, state: _State) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    axes = _axes(run)  # axis -> number of values
    axis_of = {p: a for a in axes for p in a.split("+")}
    stage_axes: dict[str, list[str]] = {}
    stages_json: dict[str, Any] = {}
    jobs: dict[str, dict[str, Any]] = {}
    for spec in run.stages:
        own = [axis_of[p] for p in spec.params]
        upstream = [a for s in spec.after for a in stage_axes[s]]
        names = list(dict.fromkeys(own + upstream))
        stage_axes[spec.name] = names
        state.stage_axes[(run.name, spec.name)] = names
        index = state.by_combo[(run.name, spec.name)] = {}
        outputs = {o: f"$out/{o}" for o in sorted(spec.outputs)}
        script = _script(spec).encode()
        state.scripts[spec.name] = script
        state.stage_outputs[(run.name, spec.name)] = spec.outputs
        stages_json[spec.name] = {
            "pname": spec.name,
            "version": "1.0",
            "file": f"stages/{spec.name}.nix",
            # as a Nix store path, it changes with the script's content
            "script": f"/nix/store/{_base32_hash(spec.name + chr(10) + script.decode())}"
            f"-repx-stage-{spec.name}"
            f"/bin/{spec.name}",
            "parameters": dict.fromkeys(spec.params, 0),
            "inputs": [
                *({"stage": s} for s in spec.after),
                *({"stage": s, "gather": True} for s in spec.gather),
                *({"run": r, "stage": s, "gather": True} for r, s in spec.from_run),
            ],
            "outputs": outputs,
            "depends_on": [*spec.after, *spec.gather, *(f"{r}.{s}" for r, s in spec.from_run)],
            "resources": _hints(spec),
        }
        ids: list[str] = []
        for values in itertools.product(*(range(axes[a]) for a in names)):
            combo = dict(zip(names, values, strict=True))
            params = {p: run.parameters[p][combo[axis_of[p]]] for p in spec.params}
            inputs = _inputs(run, spec, combo, state)
            run_inputs = _run_inputs(spec)
            job_id = _job_id(
                spec.name,
                script,
                params,
                inputs,
                run_inputs=run_inputs,
                run_hashes=state.run_hashes,
            )
            state.combos[job_id] = combo
            index[values] = job_id
            ids.append(job_id)
            jobs[job_id] = {
                "stage": spec.name,
                "stage_type": "simple",
                "params": params,
                "inputs": inputs,
                **({"run_inputs": run_inputs} if run_inputs else {}),
                "outputs": outputs,
                "executables": {"main": {"path": f"jobs/{job_id}/bin/{spec.name}"}},
                "parameters_file": f"jobs/{job_id}/parameters.json",
                "resources": _hints(spec),
            }
        state.stage_jobs[(run.name, spec.name)] = ids
    manifest = {
        "format": "repx-run/1",
        "name": run.name,
        "hash": "",
        "parameters": {k: list(v) for k, v in run.parameters.items()},
        "zip_groups": [list(g) for g in run.zip_groups],
        # Nix writes attribute sets with sorted keys: stages by name, jobs by id
        "stages": _sorted(stages_json),
        "jobs": _sorted(jobs),
    }
    return manifest, jobs


def _axes(run: RunSpec) -> dict[str, int]:
    """Axis name -> number of values; a zip group is one axis named ``a+b``."""
    zipped = {p for g in run.zip_groups for p in g}
    axes = {"+".join(g): len(run.parameters[g[0]]) for g in run.zip_groups}
    axes.update({p: len(v) for p, v in run.parameters.items() if p not in zipped})
    return axes


def _inputs(
    run: RunSpec, spec: StageSpec, combo: dict[str, int], state: _State
) -> list[dict[str, Any]]:
    upstream = [(run.name, s, False) for s in spec.after]
    upstream += [(run.name, s, True) for s in spec.gather]
    upstream += [(r, s, True) for r, s in spec.from_run]
    inputs: list[dict[str, Any]] = []
    for run_name, stage, gather in upstream:
        if not gather:  # the one upstream job of this job's combination
            key = tuple(combo[a] for a in state.stage_axes[(run_name, stage)])
            jobs = [state.by_combo[(run_name, stage)][key]]
        else:  # same-run upstream jobs must agree with this job's combination
            jobs = [
                j
                for j in state.stage_jobs[(run_name, stage)]
                if run_name != run.name
                or all(combo.get(a, v) == v for a, v in state.combos[j].items())
            ]
        for job_id in jobs:
            for output in state.stage_outputs[(run_name, stage)]:
                inputs.append(
                    {
                        "name": re.sub(r"\W", "_", f"{stage}_{output}"),
                        "job": job_id,
                        "output": output,
                        "run": run_name,
                        "gather": gather,
                    }
                )
    # in the order the Nix library sorts them (name, job, output, gather)
    return sorted(
        inputs, key=lambda i: "\t".join([i["name"], i["job"], i["output"], "g" * i["gather"]])
    )


def _run_inputs(spec: StageSpec) -> list[dict[str, Any]]:
    """The stage's inter-run inputs, as the Nix library writes them (sorted by name)."""
    found: list[dict[str, Any]] = []
    if spec.store_base:
        found.append({"name": "store__base", "kind": "store_base"})
    for run in spec.metadata_of:
        found.append({"name": f"metadata__{run}", "kind": "run_metadata", "run": run})
    return sorted(found, key=lambda i: str(i["name"]))


def _job_id(
    stage: str,
    script: bytes,
    params: dict[str, Any],
    inputs: list[dict[str, Any]],
    *,
    run_inputs: Sequence[Mapping[str, Any]] = (),
    run_hashes: Mapping[str, str] | None = None,
) -> str:
    lines = [f"{i['name']}={i['job']}" for i in inputs]
    # as the contract says: run-input<TAB><name><TAB><upstream run hash> (run_metadata)
    lines += [
        f"run-input\t{i['name']}\t{(run_hashes or {}).get(i['run'], '')}"
        for i in run_inputs
        if i["kind"] == "run_metadata"
    ]
    upstream = ",".join(sorted(lines))
    text = f"repx-job/1\0{hashlib.sha256(script).hexdigest()}\0{_canonical(params)}\0{upstream}"
    return f"{_base32_hash(text)}-{stage}"


def _script(spec: StageSpec) -> str:
    body = spec.script
    if body is None:
        lines = []
        for output in spec.outputs:
            parent = os.path.dirname(output)
            if parent:
                lines.append(f'mkdir -p "$out/{parent}"')
            lines.append(f'cat "$params" > "$out/{output}"')
        body = "\n".join(lines)
    return (
        "#!/bin/sh\n"
        f"# repx labfactory stage '{spec.name}'\n"
        "set -eu\n"
        'out="$1"; inputs="$2"; params="$3"\n'
        'export out inputs params\nmkdir -p "$out"\n'
        f"{body}\n"
    )


def _write_job(root: Path, job_id: str, job: dict[str, Any], script: bytes) -> None:
    base = root / "jobs" / job_id
    if base.exists():  # a job shared by several runs is stored once
        return
    # explicit mkdirs: directory creation dominates the cost of writing big labs
    os.mkdir(base)
    os.mkdir(base / "bin")
    fd = os.open(base / "bin" / job["stage"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
    with os.fdopen(fd, "wb") as exe:
        exe.write(script)
    (base / "parameters.json").write_text(_canonical(job["params"]))
    out = base / "out"
    os.mkdir(out)
    for output in job["outputs"]:
        parent = os.path.dirname(output)
        if parent:
            (out / parent).mkdir(parents=True, exist_ok=True)


def _write_host_tools(root: Path, *, enabled: bool, static: bool) -> str:
    rel = f"host-tools/{_base32_hash('host-tools')}"
    bin_dir = root / rel / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if enabled and static:
        _link_busybox(bin_dir)
    if enabled:
        # copies, as the Nix library makes: a symlink out of the lab would be refused
        for tool in HOST_TOOLS:
            found = shutil.which(tool)
            if found and not (bin_dir / tool).exists():
                shutil.copy(os.path.realpath(found), bin_dir / tool)
    return rel


def _link_busybox(bin_dir: Path) -> None:
    """A static busybox in the lab, its applets linked to it: like a real lab's host-tools,
    they run in the hermetic bwrap sandbox, where the host's /usr is not visible."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return
    target = bin_dir / "busybox"
    if target.exists():
        return
    try:
        os.link(os.path.realpath(busybox), target)
    except OSError:
        shutil.copy2(busybox, target)
    for name in _busybox_applets(busybox):
        if name not in _HOST_ONLY and not os.path.lexists(bin_dir / name):
            (bin_dir / name).symlink_to("busybox")


@functools.cache
def _busybox_applets(busybox: str) -> tuple[str, ...]:
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    return tuple(listed.stdout.split())


def _run_order(runs: Iterable[RunSpec]) -> list[str]:
    done: list[str] = []
    pending = list(runs)
    while pending:
        ready = [r for r in pending if all(d in done for d in r.depends_on)]
        if not ready:  # a cycle (tests build those on purpose): keep the given order
            return done + [r.name for r in pending]
        done += [r.name for r in ready]
        pending = [r for r in pending if r not in ready]
    return done


def _entries(root: Path) -> Iterable[tuple[str, str]]:
    """(relative path, kind) of every file, symlink and empty directory under ``root``."""
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else f"{rel_dir}/"
        if not dirs and not files and prefix:
            yield rel_dir, "empty_dir"
        for name in [*files, *dirs]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                yield prefix + name, "symlink"
            elif name in files:
                yield prefix + name, "file"


def _hash32(hex_digest: str) -> str:
    value = int(hex_digest[:40], 16)
    return "".join(NIX_BASE32[(value >> (5 * (31 - i))) & 31] for i in range(32))


def _sorted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return dict(sorted(mapping.items()))


def _hints(spec: StageSpec) -> dict[str, Any]:
    """The stage's resource hints as the build writes them (checked and normalised)."""
    normalised = {key: hints.check(key, value) for key, value in sorted(spec.resources.items())}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in normalised.items()}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _base32_hash(text: str) -> str:
    return nix_base32(hashlib.sha256(text.encode()).digest()[:20])


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
