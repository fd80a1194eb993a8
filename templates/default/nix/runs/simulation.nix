# Every parameter is a list: the run sweeps their cartesian product (2 seeds x 4 temperatures
# = 8 jobs). A list of one value is a setting, not an axis.
{
  name = "simulation";
  pipelines = [ ../pipelines/simulation.nix ];
  parameters = {
    seed = [ 1 2 ];
    temperature = [ 1.5 2.0 2.3 3.0 ];
    size = [ 32 ];
    sweeps = [ 1000 ];
  };
}
