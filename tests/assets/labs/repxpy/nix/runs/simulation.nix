{
  name = "simulation";
  pipelines = [ ../pipelines/simulation.nix ];
  parameters = {
    slope = [ 1 2 ];
  };
}
