#!/usr/bin/env bash
# The main job, end to end, on the embedded example: set the machine up (tools/setup.sh,
# idempotent), create an experiment from the `default` template (an Ising-model sweep in
# Python), build its lab, run it, print the aggregate table and end with the plot's path.
# A second invocation reuses everything and is fast.
#
#   tools/demo.sh [DIR]        (default: $REPX_DEMO_DIR or ~/repx-demo)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${1:-${REPX_DEMO_DIR:-$HOME/repx-demo}}
repx="$repo/.venv/bin/repx"

"$repo/tools/setup.sh"

echo "==> experiment in $demo"
if [ -f "$demo/flake.nix" ]; then
  echo "    exists; re-locking it on this checkout's library and toolchain"
  (cd "$demo" && nix flake lock --update-input repx --update-input nixpkgs 2>/dev/null)
else
  "$repx" init "$demo" --template default
fi
cd "$demo"

echo "==> repx build"
"$repx" build

echo "==> repx run"
"$repx" run

echo "==> results"
# Ask repx where the outputs of this lab's jobs are (ids change when the experiment does).
output_of() { "$repx" list jobs --stage "$1" --output-paths --json | jq -r ".jobs[0].output_paths[\"$2\"]"; }
summary=$(output_of aggregate summary.csv)
plot=$(output_of plot plot.png)
cat "$summary"
echo
echo "summary table: $summary"
echo "all outputs:   $demo/repx-runs/outputs   (repx status, repx list jobs --output-paths)"
echo "plot:          $plot"
