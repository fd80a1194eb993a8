"""The 2-D Ising model: Metropolis Monte Carlo on a periodic square lattice.

Spins s = +-1 on a size x size torus with energy E = -sum of s_i s_j over neighbour pairs
(J = 1, k_B = 1). Starting from all spins up, each sweep updates the two sublattices of the
checkerboard in turn (no two neighbours change at once, so numpy updates a whole sublattice
in one step). Writes one CSV row per sweep: the magnetisation and the energy per spin.
"""

import argparse

import numpy as np

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--temperature", type=float, required=True)
parser.add_argument("--size", type=int, required=True, help="lattice side (even)")
parser.add_argument("--sweeps", type=int, required=True)
parser.add_argument("--out", required=True, help="the CSV file to write")
args = parser.parse_args()
if args.size < 2 or args.size % 2:
    parser.error(f"--size must be even and at least 2, not {args.size}")

rng = np.random.default_rng(args.seed)
spins = np.ones((args.size, args.size), dtype=np.int64)
rows, cols = np.indices(spins.shape)
sublattices = [(rows + cols) % 2 == parity for parity in (0, 1)]
# Acceptance probability of a flip costing dE in {-8, -4, 0, 4, 8}: min(1, exp(-dE / T)).
accept = np.minimum(1.0, np.exp(-np.arange(-8, 9) / args.temperature))


def neighbours(s: np.ndarray) -> np.ndarray:
    return np.roll(s, 1, 0) + np.roll(s, -1, 0) + np.roll(s, 1, 1) + np.roll(s, -1, 1)


trace = np.empty((args.sweeps, 3))
for sweep in range(args.sweeps):
    for sublattice in sublattices:
        cost = 2 * spins * neighbours(spins)
        flip = sublattice & (rng.random(spins.shape) < accept[cost + 8])
        spins[flip] *= -1
    energy = -np.sum(spins * (np.roll(spins, 1, 0) + np.roll(spins, 1, 1)))
    trace[sweep] = (sweep + 1, spins.mean(), energy / spins.size)

np.savetxt(
    args.out,
    trace,
    fmt=("%d", "%.6f", "%.6f"),
    delimiter=",",
    header="sweep,magnetisation,energy",
    comments="",
)
