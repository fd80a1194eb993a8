{ pkgs }:
{
  pname = "report";
  version = "1.0";
  inputs = [ "summary" ];
  outputs = {
    "report.md" = "$out/report.md";
  };
  parameters = {
    digits = 4;
  };
  runDependencies = [ pkgs.gawk ];
  run =
    { inputs, outputs, parameters, ... }:
    ''
      {
        echo "# Estimating pi"
        echo
        echo "| samples | runs | mean estimate | mean abs error |"
        echo "|---:|---:|---:|---:|"
        awk -F, -v digits="${parameters.digits}" 'NR > 1 {
          n[$2]++; est[$2] += $3; err[$2] += $4
        } END {
          fmt = "| %d | %d | %." digits "f | %." digits "f |\n"
          for (s in n) printf fmt, s, n[s], est[s] / n[s], err[s] / n[s]
        }' "${inputs.summary}" | sort -t'|' -k2,2n
      } > "${outputs."report.md"}"
    '';
}
