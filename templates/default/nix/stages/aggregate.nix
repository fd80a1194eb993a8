# The pandas aggregate of the whole sweep (aggregate.py, next to this file).
{ pkgs }:
{
  pname = "aggregate";
  version = "1.0";
  # A gathered input: a JSON list of {job, params, path}, one entry per simulate job.
  inputs = [ "traces" ];
  outputs = {
    "summary.csv" = "$out/summary.csv";
  };
  parameters = {
    burn_in = 200;
  };
  runDependencies = [ (pkgs.python3.withPackages (ps: [ ps.pandas ])) ];
  run =
    { inputs, outputs, parameters, ... }:
    ''
      python3 ${./aggregate.py} \
        --traces "${inputs.traces}" \
        --burn-in "${parameters.burn_in}" \
        --out "${outputs."summary.csv"}"
    '';
}
