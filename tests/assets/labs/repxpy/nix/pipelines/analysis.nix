{ repx }:
repx.mkPipe {
  plotter = repx.callStage ../stages/plotter.nix [ ];
}
