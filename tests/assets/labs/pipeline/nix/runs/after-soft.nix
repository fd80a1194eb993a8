{
  name = "after-soft";
  pipelines = [ ../pipelines/note.nix ];
  parameters = {
    tag = [ "soft" ];
  };
}
