# simulate runs once per (seed, samples); aggregate gathers all of them into one table.
{ repx }:
repx.mkPipe rec {
  simulate = repx.callStage ../stages/simulate.nix [ ];
  aggregate = repx.callStage ../stages/aggregate.nix [
    [ (repx.gather simulate) "estimate.json" "estimates" ]
  ];
}
