# The matplotlib plot of the aggregate table (plot.py, next to this file).
{ pkgs }:
{
  pname = "plot";
  version = "1.0";
  inputs = [ "summary" ];
  outputs = {
    "plot.png" = "$out/plot.png";
  };
  runDependencies = [ (pkgs.python3.withPackages (ps: [ ps.pandas ps.matplotlib ])) ];
  run =
    { inputs, outputs, ... }:
    ''
      # matplotlib keeps its font cache in a writable config directory, and a job's HOME is
      # none (it would warn and make a temporary one): give it one, removed when the job ends.
      MPLCONFIGDIR=$(mktemp -d)
      export MPLCONFIGDIR
      trap 'rm -rf "$MPLCONFIGDIR"' EXIT
      python3 ${./plot.py} --summary "${inputs.summary}" --out "${outputs."plot.png"}"
    '';
}
