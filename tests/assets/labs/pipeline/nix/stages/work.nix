{ pkgs }:
{
  pname = "work";
  outputs = {
    "value.txt" = "$out/value.txt";
    "token" = "$out/token";
  };
  parameters = {
    i = 0;
    fail = 0;
    pause = "0";
  };
  resources = {
    cpus = 1;
    mem = "64M";
  };
  run =
    { outputs, parameters, ... }:
    ''
      sleep "${parameters.pause}"
      if [ "${parameters.i}" = "${parameters.fail}" ]; then
        echo "work ${parameters.i}: failing on purpose" >&2
        exit 3
      fi
      echo "work ${parameters.i}"
      # A token unique to this execution: tests tell re-executions apart with it.
      cat /proc/sys/kernel/random/uuid > "${outputs.token}"
      printf '%s\n' "${parameters.i}" > "${outputs."value.txt"}"
    '';
}
