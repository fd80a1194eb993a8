{
  name = "broken";
  pipelines = [ ../pipelines/sums.nix ];
  parameters = {
    offset = [ 0 ];
    # the branch of number 3 (branch-2) fails in its step "square"
    fail_item = [ 3 ];
  };
}
