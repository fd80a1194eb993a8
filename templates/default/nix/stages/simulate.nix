# One Monte Carlo simulation of the 2-D Ising model (simulate.py, next to this file).
# The run gives one job per combination of its parameters: here per (seed, temperature).
# `${./simulate.py}` is the script's store path, part of every job id: editing the script
# reruns these jobs and whatever reads their outputs; editing nothing reruns nothing.
{ pkgs }:
{
  pname = "simulate";
  version = "1.0";
  outputs = {
    "trace.csv" = "$out/trace.csv";
  };
  parameters = {
    seed = 1;
    temperature = 2.0;
    size = 32;
    sweeps = 1000;
  };
  runDependencies = [ (pkgs.python3.withPackages (ps: [ ps.numpy ])) ];
  resources = {
    cpus = 1;
    mem = "256M";
    time = "00:05:00";
  };
  run =
    { outputs, parameters, ... }:
    ''
      python3 ${./simulate.py} \
        --seed "${parameters.seed}" \
        --temperature "${parameters.temperature}" \
        --size "${parameters.size}" \
        --sweeps "${parameters.sweeps}" \
        --out "${outputs."trace.csv"}"
    '';
}
