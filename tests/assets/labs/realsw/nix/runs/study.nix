{
  name = "study";
  pipelines = [ ../pipelines/study.nix ];
  parameters = {
    seed = [ 1 2 3 ];
  };
}
