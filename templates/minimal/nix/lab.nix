{ pkgs, repx, gitHash }:
repx.mkLab {
  inherit pkgs gitHash;
  name = "my-experiment";
  lab_version = "0.1.0";
  runs = {
    hello = repx.callRun ./run.nix [ ];
  };
}
