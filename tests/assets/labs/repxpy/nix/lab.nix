{ pkgs, repx }:
repx.mkLab {
  inherit pkgs;
  gitHash = "unknown";
  name = "repxpy-tests";
  lab_version = "0.1.0";
  runs = rec {
    # producer (slope 1, 2) -> summer: y = slope * x^2 for x = 0..4, summed
    simulation = repx.callRun ./runs/simulation.nix [ ];
    # reads the simulation run through repx_py (store__base, metadata__simulation)
    analysis = repx.callRun ./runs/analysis.nix [ [ simulation "hard" ] ];
  };
}
