{ pkgs }:
{
  pname = "total";
  inputs = [ "values" ];
  outputs = {
    "total.txt" = "$out/total.txt";
  };
  run =
    { inputs, outputs, ... }:
    ''
      jq -r '.[].path' "${inputs.values}" | while IFS= read -r file; do
        cat "$file"
      done | awk '{ s += $1 } END { print s }' > "${outputs."total.txt"}"
    '';
}
