# Every parameter is a list: the run sweeps their cartesian product (3 seeds x 2 sizes).
{
  name = "simulation";
  pipelines = [ ../pipelines/simulation.nix ];
  parameters = {
    seed = [ 1 2 3 ];
    samples = [ 1000 20000 ];
  };
}
