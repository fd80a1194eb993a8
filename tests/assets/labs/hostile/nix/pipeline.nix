{ repx }:
repx.mkPipe {
  echo = repx.callStage ./stage.nix [ ];
}
