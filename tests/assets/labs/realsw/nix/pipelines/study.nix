{ repx }:
repx.mkPipe rec {
  simulate = repx.callStage ../stages/simulate.nix [ ];
  analyse = repx.callStage ../stages/analyse.nix [
    [ (repx.gather simulate) "result.txt" "results" ]
  ];
  gplot = repx.callStage ../stages/gplot.nix [
    [ analyse "summary.csv" "summary" ]
  ];
}
