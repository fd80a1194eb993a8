{ pkgs, repx }:
repx.mkLab {
  inherit pkgs;
  gitHash = "unknown";
  name = "scatter-tests";
  lab_version = "0.1.0";
  runs = {
    sums = repx.callRun ./runs/sums.nix [ ];
    broken = repx.callRun ./runs/broken.nix [ ];
  };
}
