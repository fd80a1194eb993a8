{ pkgs, repx }:
repx.mkLab {
  inherit pkgs;
  gitHash = "unknown";
  name = "hostile";
  lab_version = "0.1.0";
  runs = {
    echo = repx.callRun ./run.nix [ ];
  };
}
