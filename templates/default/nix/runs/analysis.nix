{
  name = "analysis";
  pipelines = [ ../pipelines/analysis.nix ];
  parameters = {
    burn_in = [ 200 ];
  };
}
