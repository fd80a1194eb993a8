{ pkgs, repx }:
repx.mkLab {
  inherit pkgs;
  gitHash = "unknown";
  name = "run-tests";
  lab_version = "0.1.0";
  runs = rec {
    # 8 "work" jobs gathered by one "total" job.
    sweep = repx.callRun ./runs/sweep.nix [ ];
    # The same pipeline where work i=3 fails (exit 3).
    broken = repx.callRun ./runs/broken.nix [ ];
    # Soft: runs once every job of "broken" has finished, whatever the outcome.
    after-soft = repx.callRun ./runs/after-soft.nix [ [ broken "soft" ] ];
    # Hard: runs only if every job of "broken" succeeded.
    after-hard = repx.callRun ./runs/after-hard.nix [ [ broken "hard" ] ];
  };
  groups = {
    failing = [ "broken" "after-soft" "after-hard" ];
  };
}
