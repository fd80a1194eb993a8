{
  name = "sums";
  pipelines = [ ../pipelines/sums.nix ];
  parameters = {
    offset = [ 0 ];
    fail_item = [ (-1) ];
  };
}
