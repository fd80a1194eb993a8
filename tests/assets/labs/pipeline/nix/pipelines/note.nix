{ repx }:
repx.mkPipe {
  note = repx.callStage ../stages/note.nix [ ];
}
