{
  name = "sweep";
  pipelines = [ ../pipelines/work.nix ];
  parameters = {
    i = [ 1 2 3 4 5 6 7 8 ];
    fail = [ 0 ];
    pause = [ "0.2" ];
  };
}
