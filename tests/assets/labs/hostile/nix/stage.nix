{ pkgs }:
{
  pname = "echo";
  outputs = {
    "value.txt" = "$out/value.txt";
  };
  parameters = {
    value = "";
  };
  run =
    { outputs, parameters, ... }:
    ''
      printf '%s' "${parameters.value}" > "${outputs."value.txt"}"
    '';
}
