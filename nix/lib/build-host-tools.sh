# Builder of the host-tools derivation (run by bash inside the Nix sandbox): the static
# programs a host without Nix needs to run a lab. Its own derivation, keyed by the tool
# packages only, so every lab revision refers to the same store path instead of copying it.
# shellcheck shell=bash disable=SC2154  # the variables come from the derivation's environment
set -euo pipefail

# Copies (not links into /nix/store) so they run on hosts without Nix once the lab is copied
# dereferenced. Regular files first, then symlinks re-pointed at the copied file of the same
# name (busybox applets), so nothing is copied twice.
ht="$out"
mkdir -p "$ht/bin"
read -r -a host_tools <<<"$hostTools"
for p in "${host_tools[@]}"; do
  for sub in lib libexec; do
    [ -d "$p/$sub" ] || continue
    mkdir -p "$ht/$sub"
    # Per entry: busybox `cp -n DIR/. DEST` skips the whole tree once DEST exists.
    for f in "$p/$sub"/*; do cp -rLn "$f" "$ht/$sub/"; done
  done
  if [ -d "$p/bin" ]; then
    find "$p/bin/" -maxdepth 1 -type f -exec cp -n {} "$ht/bin/" \;
  fi
done
for p in "${host_tools[@]}"; do
  [ -d "$p/bin" ] || continue
  find "$p/bin/" -maxdepth 1 -type l | while read -r link; do
    name="${link##*/}"
    [ -e "$ht/bin/$name" ] && continue
    target="$(readlink -f "$link")"
    if [ -f "$ht/bin/${target##*/}" ]; then
      ln -s "${target##*/}" "$ht/bin/$name"
    else
      cp -L "$link" "$ht/bin/$name"
    fi
  done
done
chmod -R u+w "$ht"
