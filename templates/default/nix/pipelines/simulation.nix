# simulate runs once per combination of the run's parameters (2 seeds x 4 temperatures).
{ repx }:
repx.mkPipe {
  simulate = repx.callStage ../stages/simulate.nix [ ];
}
