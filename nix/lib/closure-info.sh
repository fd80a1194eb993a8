# Builder of a lab's closure description (bash in the Nix sandbox, __structuredAttrs): for
# every store path the lab refers to, the NAR hash and size Nix recorded (from
# exportReferencesGraph) and the symbolic links inside it. A lab refers to these paths
# instead of copying them; a copy made for a host without Nix (`repx export`, `cp -rL`)
# carries them, and `repx verify` checks each copied path against its NAR hash. The links
# are listed because a dereferencing copy (`cp -rL`) replaces them by what they point to,
# which a NAR hash alone could not tell from tampering.
# Its own derivation: it depends only on the closure roots, so a revision that changes
# parameters only reuses it.
# shellcheck shell=bash disable=SC1090,SC2154  # .attrs.sh (the attributes) is written by Nix
set -euo pipefail
# In the build directory (Nix 2.8 sets NIX_ATTRS_*_FILE to the path outside the sandbox).
attrs_json="$NIX_BUILD_TOP/.attrs.json"
attrs_sh="$NIX_BUILD_TOP/.attrs.sh"
[ -e "$attrs_json" ] || attrs_json="$NIX_ATTRS_JSON_FILE" attrs_sh="$NIX_ATTRS_SH_FILE"
source "$attrs_sh"
export PATH
out="${outputs[out]}"

jq -r '[.closure[], .hosttools[]] | .[].path' "$attrs_json" | sort -u >paths
# One find per store path (hundreds, never one process per file): %P is the path below the
# starting point, %l the link's target (store path names hold no % or \). A find without
# -printf (busybox, in package sets built on it) costs one readlink per link instead.
printf_ok=0
find "$NIX_BUILD_TOP" -maxdepth 0 -printf '' 2>/dev/null && printf_ok=1
: >links.nul
while read -r p; do
  if [ -L "$p" ]; then
    printf '%s\0\0%s\0' "$p" "$(readlink "$p")" >>links.nul
  elif [ "$printf_ok" = 1 ]; then
    find "$p" -mindepth 1 -type l -printf "$p\\0%P\\0%l\\0" >>links.nul
  else
    find "$p" -mindepth 1 -type l -print0 | while IFS= read -r -d '' link; do
      printf '%s\0%s\0%s\0' "$p" "${link#"$p"/}" "$(readlink "$link")"
    done >>links.nul
  fi
done <paths

# entries: the lab's store/<name> for each closure path, then its host-tools/<hash>;
# runs: each run's own closure (the store paths of its per-run image).
jq -c -S --rawfile links links.nul '
  ($links | split("\u0000") | .[:-1] | [range(0; length; 3) as $i | {store: .[$i], rel: .[$i + 1], target: .[$i + 2]}]
   | group_by(.store) | map({key: .[0].store, value: (map({key: .rel, value: .target}) | from_entries)}) | from_entries) as $l
  | def entry($lab): {path: $lab, store_path: .path, nar_hash: .narHash, nar_size: .narSize,
                      symlinks: ($l[.path] // {})};
  . as $a
  | {format: "repx-closure/1",
     entries: ([.closure | unique_by(.path)[] | entry("store/" + (.path | ltrimstr("/nix/store/")))]
               + [.hosttools[] | select(.path == $a.hostToolsPath) | entry("host-tools/" + $a.hostToolsHash)]),
     runs: (.runKeys | map_values(. as $key | [$a[$key][].path] | unique))}
' "$attrs_json" >"$out"
