# The lab: which runs exist and how they depend on each other.
{ pkgs, repx, gitHash }:
repx.mkLab {
  inherit pkgs gitHash;
  name = "my-experiment";
  lab_version = "0.1.0";
  runs = rec {
    simulation = repx.callRun ./runs/simulation.nix [ ];
    # "hard": the analysis runs only once the whole simulation run has succeeded.
    analysis = repx.callRun ./runs/analysis.nix [ [ simulation "hard" ] ];
  };
  groups = {
    all = [ "simulation" "analysis" ];
  };
}
