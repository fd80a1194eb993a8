{ pkgs }:
{
  pname = "gplot";
  inputs = [ "summary" ];
  outputs = {
    "means.png" = "$out/means.png";
  };
  runDependencies = [ pkgs.gnuplot ];
  run =
    { inputs, outputs, ... }:
    ''
      gnuplot -e "set terminal png; set datafile separator ','; set output '${outputs."means.png"}'; plot '${inputs.summary}' using 1:2 every ::1 with lines"
      awk 'BEGIN { printf "%.4f\n", sqrt(2) }' >> /dev/null
    '';
}
