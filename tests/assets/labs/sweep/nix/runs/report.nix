{
  name = "report";
  pipelines = [ ../pipelines/report.nix ];
  parameters = {
    digits = [ 4 ];
  };
}
