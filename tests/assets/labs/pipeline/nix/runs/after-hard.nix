{
  name = "after-hard";
  pipelines = [ ../pipelines/note.nix ];
  parameters = {
    tag = [ "hard" ];
  };
}
