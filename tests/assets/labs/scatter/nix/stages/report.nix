{ pkgs }:
{
  pname = "report";
  inputs = [ "sum" ];
  outputs.report = "$out/report.txt";
  run =
    { inputs, outputs, ... }:
    ''
      echo "total $(cat "${inputs.sum}")" > "${outputs.report}"
    '';
}
