{ pkgs }:
{
  pname = "numbers";
  outputs.numbers = "$out/numbers.txt";
  parameters.offset = 0;
  run =
    { outputs, parameters, ... }:
    ''
      for i in 1 2 3 4; do echo $((i + ${parameters.offset})); done > "${outputs.numbers}"
    '';
}
