"""Plot the sweep: magnetisation and specific heat against temperature.

Each seed is a dot, the mean over seeds a line with the seeds' spread; the dashed curve is
Onsager's exact spontaneous magnetisation of the infinite lattice, which vanishes at the
critical temperature Tc = 2 / ln(1 + sqrt 2).
"""

import argparse

import matplotlib

matplotlib.use("Agg")  # no display: render straight to PNG

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--summary", required=True, help="the aggregate's CSV table")
parser.add_argument("--out", required=True, help="the PNG file to write")
args = parser.parse_args()

table = pd.read_csv(args.summary)
by_temperature = table.groupby("temperature")
critical = 2 / np.log(1 + np.sqrt(2))
size = ", ".join(f"{s}x{s}" for s in sorted(table["size"].unique()))

figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for ax, column, label in (
    (axes[0], "magnetisation", "|magnetisation| per spin"),
    (axes[1], "specific_heat", "specific heat per spin"),
):
    ax.plot(table["temperature"], table[column], ".", color="tab:blue", alpha=0.5, label="one seed")
    mean = by_temperature[column].mean()
    spread = by_temperature[column].std().fillna(0.0)
    ax.errorbar(
        mean.index,
        mean,
        yerr=spread,
        fmt="o-",
        color="tab:blue",
        capsize=3,
        label="mean over seeds",
    )
    ax.axvline(critical, color="grey", linestyle=":", label=f"Tc = {critical:.3f}")
    ax.set_xlabel("temperature")
    ax.set_ylabel(label)
ordered = np.linspace(min(table["temperature"].min(), critical) * 0.9, critical, 400)
exact = np.clip(1 - np.sinh(2 / ordered) ** -4, 0.0, None) ** 0.125
axes[0].plot(ordered, exact, "k--", label="Onsager, infinite lattice")
axes[0].legend(fontsize="small")
seeds = table["seed"].nunique()
plural = "s" if seeds > 1 else ""
figure.suptitle(f"2-D Ising model, {size} lattice, {seeds} seed{plural} per temperature")
figure.savefig(args.out, dpi=100)
