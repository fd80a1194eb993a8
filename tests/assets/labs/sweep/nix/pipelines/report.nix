# A stage of another run is consumed with repx.fromRun (the run must be a dependency).
{ repx }:
repx.mkPipe {
  report = repx.callStage ../stages/report.nix [
    [ (repx.fromRun "simulation" "aggregate") "summary.csv" "summary" ]
  ];
}
