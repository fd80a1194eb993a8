{ pkgs, repx }:
repx.mkLab {
  inherit pkgs;
  gitHash = "unknown";
  name = "realsw";
  lab_version = "0.1.0";
  runs = {
    study = repx.callRun ./runs/study.nix [ ];
  };
}
