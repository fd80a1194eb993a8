{ pkgs }:
{
  pname = "hello";
  outputs = {
    "greeting.txt" = "$out/greeting.txt";
  };
  parameters = {
    who = "world";
  };
  run =
    { outputs, parameters, ... }:
    ''
      echo "Hello, ${parameters.who}!" > "${outputs."greeting.txt"}"
    '';
}
