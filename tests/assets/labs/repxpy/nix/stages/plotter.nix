{ pkgs }:
{
  pname = "simple-plotter";
  version = "1.1";
  outputs = {
    "plot.png" = "$out/plot.png";
    "summary.json" = "$out/summary.json";
  };
  runDependencies = [
    (pkgs.python3.withPackages (ps: [
      ps.pandas
      ps.matplotlib
      pkgs.repx
    ]))
  ];
  # Analysis code as written for RepX. The inter-run inputs are read from inputs.json: the
  # test adds them to the built lab (the Nix side declares them once nixapi's part lands).
  run =
    { outputs, ... }:
    let
      script = pkgs.writeText "plot.py" ''
        import json, sys
        import matplotlib.pyplot as plt
        from repx_py import Experiment

        meta, store, png, summary = sys.argv[1:5]
        exp = Experiment.from_run_metadata(meta, store)
        producer = exp.jobs().filter(name__contains="simple-producer", slope=2)[0]
        df = producer.load_csv("data.csv")
        summer = exp.jobs().filter(name__contains="simple-summer", slope=2)[0]
        with open(summer.get_output_path("result.sum")) as f:
            total = float(f.read().strip())
        frame = exp.jobs().to_dataframe()
        plt.plot(df["x"], df["y"])
        plt.title(f"sum {total}")
        plt.savefig(png)
        with open(summary, "w") as f:
            json.dump({"total": total, "jobs": len(frame), "slopes": sorted(set(frame["slope"]))}, f)
        print(f"total {total}")
      '';
    in
    ''
      python3 ${script} "''${INPUTS[metadata__simulation]}" "''${INPUTS[store__base]}" \
        "${outputs."plot.png"}" "${outputs."summary.json"}"
    '';
}
