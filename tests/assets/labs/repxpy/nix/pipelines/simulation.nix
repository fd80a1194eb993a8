{ repx }:
repx.mkPipe rec {
  producer = repx.callStage ../stages/producer.nix [ ];
  summer = repx.callStage ../stages/summer.nix [ producer ];
}
