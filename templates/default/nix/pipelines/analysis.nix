# A stage of another run is reached with repx.fromRun (that run must be a dependency of this
# one); repx.gather hands one aggregate job every simulate job of the sweep at once.
{ repx }:
repx.mkPipe rec {
  aggregate = repx.callStage ../stages/aggregate.nix [
    [ (repx.gather (repx.fromRun "simulation" "simulate")) "trace.csv" "traces" ]
  ];
  plot = repx.callStage ../stages/plot.nix [
    [ aggregate "summary.csv" "summary" ]
  ];
}
