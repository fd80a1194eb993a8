#!/usr/bin/env bash
# Build (and optionally run) one of RepX's own experiments with this repx: the experiment's
# files come unchanged from a RepX checkout; the only file of ours is the flake.nix written
# next to them, which calls the lab file the way RepX's flake does:
#   (import ./lab.nix { inherit pkgs; repx-lib = repx.lib; gitHash = …; }).lab
#
#   tools/repx-upstream.sh EXAMPLE [--run] [--keep DIR]
#     EXAMPLE   simple | param-sweep | reference-lab | reference-lab-native
#     --run     also `repx run` every run of the lab after building it, then check the
#               outputs RepX's own checks expect (sums, stage-E totals, plots as PNG)
#     --keep    build in DIR (kept) instead of a temporary directory
# Environment: REPX_UPSTREAM (RepX's git directory, default the project's read-only mirror),
# REPX (the repx command, default this checkout's .venv/bin/repx).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
upstream=${REPX_UPSTREAM:-/work/.mirror/repx-org+repx/repo}
repx_cmd=${REPX:-$here/.venv/bin/repx}

usage() { echo "usage: $0 simple|param-sweep|reference-lab|reference-lab-native [--run] [--keep DIR]" >&2; exit 2; }

[ "$#" -ge 1 ] || usage
example=$1
shift
run=0
keep=
while [ "$#" -gt 0 ]; do
  case $1 in
    --run) run=1 ;;
    --keep) [ "$#" -ge 2 ] || usage; keep=$2; shift ;;
    *) usage ;;
  esac
  shift
done

# Which part of RepX's tree the experiment is, and its lab file inside that part.
case $example in
  simple) part=examples/simple; lab_file=nix/lab.nix ;;
  param-sweep) part=examples/param-sweep; lab_file=nix/lab.nix ;;
  reference-lab) part=nix/reference-lab; lab_file=lab.nix ;;
  reference-lab-native) part=nix/reference-lab; lab_file=lab-native.nix ;;
  *) usage ;;
esac

if [ -n "$keep" ]; then
  work=$keep
  rm -rf -- "$work"
  mkdir -p -- "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf -- "$work"' EXIT
fi

# The experiment, exactly as RepX has it.
git -C "$upstream" archive --format=tar HEAD "$part" | tar -x -C "$work"
exp=$work/$part

# Our repx flake, copied outside git so the working tree is what gets used.
flake=$work/repx-flake
mkdir -p -- "$flake"
cp -r -- "$here/flake.nix" "$here/nix" "$flake/"
[ -d "$here/templates" ] && cp -r -- "$here/templates" "$flake/"

cat >"$exp/flake.nix" <<EOF
{
  # Written by repx's tools/repx-upstream.sh: the one file of this experiment that is ours.
  inputs = { nixpkgs.url = "nixpkgs"; repx.url = "repx"; };
  outputs = { self, nixpkgs, repx }:
    let pkgs = nixpkgs.legacyPackages.x86_64-linux;
    in {
      packages.x86_64-linux.default =
        (import ./$lab_file { inherit pkgs; repx-lib = repx.lib; gitHash = self.rev or "unknown"; }).lab;
    };
}
EOF

echo "repx-upstream: building $example ($part/$lab_file) in $exp" >&2
(cd "$exp" && "$repx_cmd" build --json --override-input "repx=path:$flake")

[ "$run" = 1 ] || exit 0

status=0
(cd "$exp" && "$repx_cmd" run --lab result --continue-on-failure) || status=$?
outputs=$exp/repx-runs/outputs

# check WHAT EXPECTED ACTUAL: one line per check, non-zero exit if any fails.
check() {
  if [ "$2" = "$3" ]; then
    echo "repx-upstream: ok: $1" >&2
  else
    echo "repx-upstream: FAILED: $1: expected '$2', got '$3'" >&2
    status=1
  fi
}
# The contents of the files named NAME under the job directories of STAGE, sorted, counted.
values() { find "$outputs" -path "*-$1/out/*" -name "$2" -exec cat {} + 2>/dev/null | sort | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = " " }'; }
# How many *.png files under the job directories of STAGE really are PNG images.
pngs() {
  local n=0 f
  while IFS= read -r -d '' f; do
    [ "$(od -An -tx1 -N4 -- "$f" | tr -d ' ')" = 89504e47 ] && n=$((n + 1))
  done < <(find "$outputs" -path "*-$1/out/*" -name '*.png' -print0 2>/dev/null)
  echo "$n"
}

case $example in
  simple)
    check "simple-summer's sum" "218.647x1" "$(values simple-summer sum.txt)"
    check "simple-plotter's plot is a PNG" 1 "$(pngs simple-plotter)"
    ;;
  param-sweep)
    check "generator jobs (slopes 1, 2, 5)" 3 "$(find "$outputs" -path '*-generator/out/data.csv' | wc -l)"
    check "plotter's plot is a PNG" 1 "$(pngs plotter)"
    ;;
  reference-lab | reference-lab-native)
    check "stage-E totals" "540x8 595x8" "$(values stage-E-total-sum total_sum.txt)"
    check "stage-analysis's plot is a PNG" 1 "$(pngs stage-analysis)"
    ;;
esac
exit "$status"
