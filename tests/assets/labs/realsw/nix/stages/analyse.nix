{ pkgs }:
{
  pname = "analyse";
  inputs = [ "results" ];
  outputs = {
    "summary.csv" = "$out/summary.csv";
    "plot.png" = "$out/plot.png";
  };
  runDependencies = [ (pkgs.python3.withPackages (ps: [ ps.numpy ps.pandas ps.matplotlib ])) ];
  run =
    { inputs, outputs, ... }:
    ''
      python3 - "${inputs.results}" "${outputs."summary.csv"}" "${outputs."plot.png"}" <<'EOF'
      import json, sys
      import numpy as np
      import pandas as pd
      import matplotlib.pyplot as plt
      paths = [e["path"] for e in json.load(open(sys.argv[1]))]
      means = [float(open(p).read().split()[1]) for p in paths]
      df = pd.DataFrame({"run": np.arange(len(means)), "mean": means})
      df.to_csv(sys.argv[2], index=False)
      df.plot(x="run", y="mean")
      plt.savefig(sys.argv[3])
      EOF
    '';
}
