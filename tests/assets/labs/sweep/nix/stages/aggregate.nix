{ pkgs }:
{
  pname = "aggregate";
  version = "1.0";
  # A gathered input is a JSON list of {job, params, path}, one entry per simulate job.
  inputs = [ "estimates" ];
  outputs = {
    "summary.csv" = "$out/summary.csv";
  };
  runDependencies = [ pkgs.jq ];
  run =
    { inputs, outputs, ... }:
    ''
      echo "seed,samples,estimate,abs_error" > "${outputs."summary.csv"}"
      jq -r '.[].path' "${inputs.estimates}" | while IFS= read -r estimate; do
        jq -r '[.seed, .samples, .estimate, (.estimate - 3.141592653589793 | if . < 0 then -. else . end)] | @csv' "$estimate"
      done | sort -t, -k2,2n -k1,1n >> "${outputs."summary.csv"}"
    '';
}
