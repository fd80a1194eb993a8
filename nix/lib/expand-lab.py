"""Expand a lab blueprint into jobs (run by the lab builder, python3 of the package set).

Nix evaluates the blueprint (nix/lib/expand.nix: `blueprint` of each run): runs, stages in
topological order, parameter axes (each value already rendered as JSON by Nix), dependency
mappings, scripts and per-stage constants — a size proportional to the definition. This
program expands each run's product, computes the job ids with the semantics of expand.nix
(script, effective parameters, upstream ids and mappings; hints excluded) and writes what
lab.nix renders in the evaluation path: the jobs table, one manifest per run, the revision
metadata, the README and the lab metadata (without the integrity list, build-lab.sh adds it).

    python3 expand-lab.py BLUEPRINT.json OUT WORKDIR

JSON is written as Nix's builtins.toJSON writes it (sorted keys, no spaces, Nix's string
escapes), so the lab is byte-identical to the one the evaluation path builds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


class Raw(str):
    """A JSON fragment rendered by Nix, spliced as it is."""


_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _SHORT.get(ch) or f"\\u{ord(ch):04x}"


def nix_string(s: str) -> str:
    """A string as builtins.toJSON writes it (Nix 2.8: \\b and \\f as \\u escapes)."""
    if _ESCAPE.search(s) is None:
        return '"' + s + '"'
    return '"' + _ESCAPE.sub(_escape, s) + '"'


def nix_json(v: object) -> str:
    """builtins.toJSON of a value made of dicts, lists, strings, ints, bools and Raw."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, str):
        return nix_string(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ",".join(nix_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(nix_string(k) + ":" + nix_json(v[k]) for k in sorted(v)) + "}"
    raise TypeError(f"cannot render {type(v).__name__}")


def hash32(s: str) -> str:
    """util.hash32: the last 32 characters of builtins.placeholder's digest of s (Nix's
    base 32 of the sha256 of "nix-output:" + s: its low 160 bits, 5 at a time, most
    significant first, the digest read as a little-endian number)."""
    digest = hashlib.sha256(b"nix-output:" + s.encode("utf-8", "surrogateescape")).digest()
    n = int.from_bytes(digest, "little")
    return "".join(ALPHABET[(n >> (5 * i)) & 31] for i in range(31, -1, -1))


def fail(where: str, msg: str) -> None:
    sys.stderr.write(f"error: repx: {where}: {msg}\n")
    sys.exit(1)


class Job:
    """One job: its id, variant (the blueprint's), parameters JSON, manifest record,
    whether an input comes from its own run and the ids of the jobs it reads, sorted and
    space-separated, for lab/job-index.tsv (not the inputs: memory at a million jobs)."""

    __slots__ = ("fed_by_own", "id", "params_json", "pname", "record", "upstream", "variant")

    def __init__(
        self,
        id_: str,
        variant: dict[str, Any],
        params_json: str,
        fed_by_own: bool,
        record: str,
        *,
        upstream: str,
    ) -> None:
        self.id = id_
        self.variant = variant
        self.pname = variant["pname"]
        self.params_json = params_json
        self.fed_by_own = fed_by_own
        self.record = record
        self.upstream = upstream


def canonical(i: dict[str, Any]) -> str:
    return "\t".join([i["name"], i["job"], i["output"], "g" if i["gather"] else ""])


def unique_jobs(jobs: list[Job]) -> list[Job]:
    """listToAttrs by id (the first wins), in the order of the ids."""
    by_id: dict[str, Job] = {}
    for j in jobs:
        by_id.setdefault(j.id, j)
    return [by_id[k] for k in sorted(by_id)]


def expand_run(
    run: dict[str, Any], env: list[str], done: dict[str, dict[str, Any]], own_ids: bool
) -> dict[str, Any]:
    """One run: { jobs: id -> Job, stages: pname -> [Job], info: pname -> JSON, hash, own }."""
    name = run["name"]
    per_stage: dict[str, list[Job]] = {}
    # the manifest's entry of each pname: that of the lowest id among the jobs of the first
    # stage giving the pname (pipelines, then stages, in order)
    info: dict[str, str] = {}
    for pipe in run["pipelines"]:
        acc: dict[str, dict[str, Any]] = {}
        for st in pipe:
            axs = st["axes"]
            params = st["params"]  # [[keyJSON, axis position in axs, [valueJSON per row]]]
            ranges = [range(n) for n in st["axisRows"]]
            # gathers: the producer's jobs grouped by the axes it shares with this stage
            gathers = {}
            for e in st["edges"]:
                if e["kind"] == "local" and e["gather"]:
                    p = acc[e["producer"]]
                    common = [a for a in axs if a in p["axes"]]
                    where = [p["axes"].index(a) for a in common]
                    groups: dict[tuple[int, ...], list[Job]] = {}
                    for combo, job in p["perCombo"]:
                        groups.setdefault(tuple(combo[k] for k in where), []).append(job)
                    gathers[e["producer"]] = (
                        [axs.index(a) for a in common],
                        {k: unique_jobs(v) for k, v in groups.items()},
                    )
            from_runs = {}
            for e in st["edges"]:
                if e["kind"] == "run":
                    js = done[e["run"]]["stages"][e["producer"]]
                    if not e["gather"] and len(js) != 1:
                        fail(
                            st["where"],
                            f"stage '{e['producer']}' of run '{e['run']}' has {len(js)} jobs;"
                            " consume it with repx.gather"
                            f' (repx.fromRun "{e["run"]}" "{e["producer"]}")',
                        )
                    from_runs[(e["run"], e["producer"])] = js
            # positions of a local (non-gather) producer's axes in this stage's axes
            local_pos = {
                e["producer"]: [axs.index(a) for a in acc[e["producer"]]["axes"]]
                for e in st["edges"]
                if e["kind"] == "local" and not e["gather"]
            }
            run_input_lines = [f"run-input\t{i}\t{done[r]['hash']}" for i, r in st["runInputs"]]
            variants = st["variants"]
            # the variant of a combination: the rows of variantAxes, the last fastest
            strides = []
            stride = 1
            for pos in reversed(st["variantAxes"]):
                strides.append((pos, stride))
                stride *= st["axisRows"][pos]
            per_combo: list[tuple[tuple[int, ...], Job]] = []
            by_key: dict[tuple[int, ...], Job] = {}
            for combo in itertools.product(*ranges):
                var = variants[sum(combo[pos] * n for pos, n in strides)]
                pname = var["pname"]
                params_json = "{" + ",".join(k + ":" + v[combo[pos]] for k, pos, v in params) + "}"
                inputs: list[dict[str, Any]] = []
                for e in st["edges"]:
                    if e["kind"] == "run":
                        ups = from_runs[(e["run"], e["producer"])]
                        gather = e["gather"] or len(ups) != 1
                        src = e["run"]
                    elif e["gather"]:
                        positions, groups = gathers[e["producer"]]
                        ups = groups.get(tuple(combo[k] for k in positions), [])
                        gather = True
                        src = name
                    else:
                        key = tuple(combo[k] for k in local_pos[e["producer"]])
                        ups = [acc[e["producer"]]["byKey"][key]]
                        gather = False
                        src = name
                    for u in ups:
                        for inp, out in e["mapping"]:
                            inputs.append(
                                {
                                    "name": inp,
                                    "job": u.id,
                                    "output": out,
                                    "run": src,
                                    "gather": gather,
                                }
                            )
                inputs.sort(key=canonical)
                fed_by_own = any(i["run"] == name for i in inputs)
                own = [f"run\t{name}"] if own_ids and fed_by_own else []
                lines = [
                    "repx-job/1",
                    var["identity"],
                    params_json,
                    *env,
                    *map(canonical, inputs),
                    *run_input_lines,
                ]
                text = "\n".join(lines + own)
                jid = f"{hash32(text)}-{pname}"
                executables = {k: {"path": f"jobs/{jid}/bin/{b}"} for k, b in var["execKeys"]}
                record = (
                    '{"executables":'
                    + nix_json(executables)
                    + ',"inputs":'
                    + nix_json(inputs)
                    + var["recordParts"][0]
                    + nix_string(f"jobs/{jid}/parameters.json")
                    + ',"params":'
                    + params_json
                    + var["recordParts"][1]
                )
                upstream = " ".join(sorted({i["job"] for i in inputs}))
                job = Job(jid, var, params_json, fed_by_own, record, upstream=upstream)
                per_combo.append((combo, job))
                by_key[combo] = job
            acc[st["attr"]] = {"axes": axs, "perCombo": per_combo, "byKey": by_key}
            lowest: dict[str, Job] = {}
            for _, j in per_combo:
                per_stage.setdefault(j.pname, []).append(j)
                if j.pname not in lowest or j.id < lowest[j.pname].id:
                    lowest[j.pname] = j
            for pn, j in lowest.items():
                info.setdefault(pn, j.variant["info"])
    stages = {p: unique_jobs(js) for p, js in per_stage.items()}
    jobs = {j.id: j for j in unique_jobs([j for js in stages.values() for j in js])}
    ids = sorted(jobs)
    run_hash = hash32(nix_json({"deps": run["depNames"], "jobs": ids, "name": name}))
    own_job_ids = [j.id for j in jobs.values() if j.fed_by_own]
    return {"jobs": jobs, "stages": stages, "info": info, "hash": run_hash, "own": own_job_ids}


def main() -> None:
    blueprint_path, out, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    bp = json.loads(Path(blueprint_path).read_bytes().decode("utf-8", "surrogateescape"))
    done: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for run in bp["runs"]:
        deps = {d: done[d] for d in run["depNames"]}
        r = expand_run(run, run["environment"], deps, False)
        if any(i in seen for i in r["own"]):
            r = expand_run(run, run["environment"], deps, True)
        done[run["name"]] = r
        seen.update(r["jobs"])
    selected = [run for run in bp["runs"] if run["name"] in set(bp["selected"])]

    def write(path: Path, text: str) -> None:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))

    all_jobs: dict[str, Job] = {}
    manifest_paths: list[str] = []
    ids = (work / "manifest-ids").open("wb")
    for run in selected:
        r = done[run["name"]]
        for jid, j in r["jobs"].items():
            all_jobs.setdefault(jid, j)
        manifest = {
            "format": "repx-run/1",
            "name": run["name"],
            "hash": r["hash"],
            "parameters": Raw(run["manifest"]["parameters"]),
            "parameter_positions": Raw(run["manifest"]["parameter_positions"]),
            "zip_groups": Raw(run["manifest"]["zip_groups"]),
            "stages": {pn: Raw(text) for pn, text in r["info"].items()},
        }
        # laid out as lab.nix's manifestText (the jobs last, one per line: the job index
        # points into them), written job by job (a million jobs is hundreds of MB); the ids
        # and what each job reads go to manifest-ids in the same order (build-lab.sh)
        rel = f"revision/{r['hash']}.json"
        manifest_paths.append(rel)
        top = nix_json(manifest)
        with (out / rel).open("wb") as f:
            f.write(top[:-1].encode("utf-8", "surrogateescape") + b',"jobs":{\n')
            for k, i in enumerate(sorted(r["jobs"])):
                job = r["jobs"][i]
                text = (",\n" if k else "") + nix_string(i) + ":" + job.record
                f.write(text.encode("utf-8", "surrogateescape"))
                ids.write(f"{i}\t{job.upstream}\n".encode("utf-8", "surrogateescape"))
            f.write(b"\n}}\n")
    ids.close()
    write(work / "manifest-paths", " ".join(manifest_paths) + "\n")

    with (work / "jobs-table").open("wb") as f:
        for jid in sorted(all_jobs):
            j = all_jobs[jid]
            rest = f"\t{j.params_json}\t{j.variant['outDirs']}\n"
            rows = "".join(f"{jid}\t{e}\t{p}{rest}" for e, p in j.variant["executables"])
            f.write(rows.encode("utf-8", "surrogateescape"))

    revision = {
        "format": "repx-revision/1",
        "runs": {
            run["name"]: {
                "manifest": f"revision/{done[run['name']]['hash']}.json",
                "hash": done[run["name"]]["hash"],
                "depends_on": run["dependsOn"],
                "job_count": len(done[run["name"]]["jobs"]),
                "stages": run["stageOrder"],
            }
            for run in selected
        },
        "run_order": [run["name"] for run in selected],
        "groups": bp["groups"],
    }
    write(out / "revision" / "metadata.json", nix_json(revision))

    lab_meta = dict(bp["labMeta"])
    lab_meta["job_count"] = len(all_jobs)
    write(work / "lab-meta.json", nix_json(lab_meta))

    # README: Nix's text with the counts left as \x01<ref>\x01 (a run's jobs, a stage's jobs
    # in a run, the lab's jobs).
    by_name = {run["name"]: done[run["name"]] for run in selected}
    parts = bp["readme"].split("\x01")
    text = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            text.append(part)
            continue
        kind, _, rest = part.partition(":")
        if kind == "lab":
            text.append(str(len(all_jobs)))
        elif kind == "run":
            text.append(str(len(by_name[bp["runs"][int(rest)]["name"]]["jobs"])))
        else:
            i, _, s = rest.partition(":")
            r = by_name[bp["runs"][int(i)]["name"]]
            pn = bp["runs"][int(i)]["stageOrder"][int(s)]
            text.append(str(sum(1 for j in r["jobs"].values() if j.pname == pn)))
    write(work / "readme", "".join(text))


if __name__ == "__main__":
    main()
