# A scatter-gather stage as RepX users write it: one branch per line of the number list.
{ pkgs }:
let
  extract = {
    pname = "extract";
    inputs = {
      worker__item = "";
      number_list = "";
    };
    outputs.number = "$out/number.txt";
    resources.mem = "64M";
    run =
      { inputs, outputs, ... }:
      ''
        index=$(jq -r '.index' "${inputs.worker__item}")
        sed -n "$((index + 1))p" "${inputs.number_list}" > "${outputs.number}"
        # unique per execution: the tests tell re-executions apart with it
        cat /proc/sys/kernel/random/uuid > token
      '';
  };
  square = {
    pname = "square";
    inputs.number = "";
    outputs.squared = "$out/squared.txt";
    deps = [ extract ];
    run =
      { inputs, outputs, parameters, ... }:
      ''
        n=$(cat "${inputs.number}")
        if [ "$n" = "${parameters.fail_item}" ]; then
          echo "square: failing on $n on purpose" >&2
          exit 3
        fi
        echo $((n * n)) > "${outputs.squared}"
        cat /proc/sys/kernel/random/uuid > token
      '';
  };
in
{
  pname = "squares";
  parameters.fail_item = -1;
  resources.cpus = 1;
  scatter = {
    inputs.number_list = "";
    outputs = {
      worker__arg = { index = 0; };
      work__items = "$out/work_items.json";
      count = "$out/count.txt";
    };
    run =
      { inputs, outputs, ... }:
      ''
        lines=$(wc -l < "${inputs.number_list}")
        echo "$lines" > "${outputs.count}"
        jq -n --argjson n "$lines" '[range($n) | { index: . }]' > "${outputs.work__items}"
      '';
  };
  steps = { inherit extract square; };
  gather = {
    inputs = {
      worker__outs = "[]";
      count = "";
    };
    outputs.sum = "$out/sum.txt";
    resources.mem = "128M";
    run =
      { inputs, outputs, ... }:
      ''
        [ "$(jq length "${inputs.worker__outs}")" = "$(cat "${inputs.count}")" ]
        jq -r '.[].squared' "${inputs.worker__outs}" | xargs cat | awk '{ s += $1 } END { print s }' > "${outputs.sum}"
      '';
  };
}
