{
  name = "analysis";
  pipelines = [ ../pipelines/analysis.nix ];
  parameters = { };
}
