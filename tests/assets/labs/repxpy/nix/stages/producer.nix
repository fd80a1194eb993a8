{ pkgs }:
{
  pname = "simple-producer";
  version = "1.1";
  outputs = {
    "data.csv" = "$out/data.csv";
  };
  parameters = {
    slope = 1;
  };
  runDependencies = [ pkgs.gawk ];
  run =
    { outputs, parameters, ... }:
    ''
      awk -v s="${parameters.slope}" 'BEGIN { print "x,y"; for (x = 0; x < 5; x++) print x "," s * x * x }' \
        > "${outputs."data.csv"}"
    '';
}
