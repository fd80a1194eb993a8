{ pkgs }:
{
  pname = "note";
  outputs = {
    "note.txt" = "$out/note.txt";
  };
  parameters = {
    tag = "";
  };
  run =
    { outputs, parameters, ... }:
    ''
      printf '%s\n' "${parameters.tag}" > "${outputs."note.txt"}"
    '';
}
