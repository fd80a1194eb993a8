"""One table for the whole sweep: a row per simulation, its parameters and its averages.

The gathered input lists every simulate job as {"job", "params", "path"}. Sweeps before
--burn-in are the relaxation from the all-up start and are left out of the averages.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--traces", required=True, help="the gathered JSON list of simulate jobs")
parser.add_argument("--burn-in", type=int, required=True, help="sweeps to leave out")
parser.add_argument("--out", required=True, help="the CSV file to write")
args = parser.parse_args()

rows = []
for job in json.loads(Path(args.traces).read_text()):
    params = job["params"]
    trace = pd.read_csv(job["path"])
    kept = trace[trace["sweep"] > args.burn_in]
    if kept.empty:
        parser.error(f"--burn-in {args.burn_in} leaves no sweep of job {job['job']}")
    spins = params["size"] ** 2
    temperature = params["temperature"]
    magnetisation = kept["magnetisation"].abs()
    rows.append(
        {
            **params,
            "magnetisation": magnetisation.mean(),
            "susceptibility": spins * magnetisation.var() / temperature,
            "energy": kept["energy"].mean(),
            "specific_heat": spins * kept["energy"].var() / temperature**2,
        }
    )

table = pd.DataFrame(rows).sort_values(["temperature", "seed"])
# the swept parameters first, then the other parameters, then the averages
first = ["temperature", "seed"]
table = table[first + [column for column in table.columns if column not in first]]
table.to_csv(args.out, index=False, float_format="%.6g")
