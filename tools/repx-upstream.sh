#!/usr/bin/env bash
# Build (and optionally run) one of RepX's own experiments with this repx: the experiment's
# files come unchanged from a RepX checkout; the only file of ours is the flake.nix written
# next to them, which calls the lab file the way RepX's flake does:
#   (import ./lab.nix { inherit pkgs; repx-lib = repx.lib; gitHash = …; }).lab
#
#   tools/repx-upstream.sh EXAMPLE [--run] [--keep DIR]
#     EXAMPLE   simple | param-sweep | reference-lab | reference-lab-native
#     --run     also `repx run` every run of the lab after building it
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

if [ "$run" = 1 ]; then
  (cd "$exp" && "$repx_cmd" run --lab result)
fi
