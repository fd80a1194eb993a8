{ repx }:
repx.mkPipe rec {
  work = repx.callStage ../stages/work.nix [ ];
  total = repx.callStage ../stages/total.nix [
    [ (repx.gather work) "value.txt" "values" ]
  ];
}
