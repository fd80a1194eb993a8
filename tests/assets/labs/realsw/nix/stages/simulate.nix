{ pkgs }:
let
  # The researcher's own simulator, compiled from source with the package set's stdenv.
  sim = pkgs.stdenv.mkDerivation {
    pname = "sim";
    version = "1.0";
    src = ../../sim;
    makeFlags = [ "PREFIX=$(out)" ];
  };
in
{
  pname = "simulate";
  outputs = {
    "result.txt" = "$out/result.txt";
  };
  parameters = {
    seed = 1;
  };
  runDependencies = [ sim ];
  run =
    { outputs, parameters, ... }:
    ''
      sim 1000 "${parameters.seed}" | cat | head -1 > "${outputs."result.txt"}"
    '';
}
