{ pkgs }:
{
  pname = "simulate";
  version = "1.0";
  outputs = {
    "estimate.json" = "$out/estimate.json";
  };
  parameters = {
    seed = 1;
    samples = 1000;
  };
  runDependencies = [ pkgs.gawk pkgs.jq ];
  resources = {
    cpus = 1;
    mem = "256M";
    time = "00:05:00";
  };
  run =
    { outputs, parameters, ... }:
    ''
      # Throw points into the unit square; the share inside the quarter circle is pi/4.
      inside=$(awk -v seed="${parameters.seed}" -v n="${parameters.samples}" 'BEGIN {
        srand(seed)
        for (i = 0; i < n; i++) { x = rand(); y = rand(); if (x * x + y * y <= 1) c++ }
        print c + 0
      }')
      jq -n --argjson seed "${parameters.seed}" --argjson samples "${parameters.samples}" \
        --argjson inside "$inside" \
        '{seed: $seed, samples: $samples, inside: $inside, estimate: (4 * $inside / $samples)}' \
        > "${outputs."estimate.json"}"
    '';
}
