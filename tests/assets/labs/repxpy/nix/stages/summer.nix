{ pkgs }:
{
  pname = "simple-summer";
  version = "1.1";
  inputs = [ "data.csv" ];
  outputs = {
    "result.sum" = "$out/result.sum";
  };
  runDependencies = [ pkgs.gawk ];
  run =
    { inputs, outputs, ... }:
    ''
      awk -F, 'NR > 1 { s += $2 } END { print s }' "${inputs."data.csv"}" > "${outputs."result.sum"}"
    '';
}
