{
  name = "broken";
  pipelines = [ ../pipelines/work.nix ];
  parameters = {
    i = [ 1 2 3 4 ];
    fail = [ 3 ];
    pause = [ "0" ];
  };
}
