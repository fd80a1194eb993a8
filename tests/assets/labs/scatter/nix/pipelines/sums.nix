{ repx }:
repx.mkPipe rec {
  numbers = repx.callStage ../stages/numbers.nix [ ];
  squares = repx.callStage ../stages/squares.nix [ [ numbers "numbers" "number_list" ] ];
  report = repx.callStage ../stages/report.nix [ squares ];
}
