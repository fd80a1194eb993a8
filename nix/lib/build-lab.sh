# Builder of the lab derivation (run by bash inside the Nix sandbox).
# Every step is batched: a handful of processes whatever the number of jobs, because one
# process per job costs ~1 ms and labs reach 100,000 jobs.
# shellcheck shell=bash disable=SC2154  # the variables come from the derivation's environment
set -euo pipefail

mkdir -p "$out/lab" "$out/revision" "$out/jobs" "$out/readme" "$out/store"

cp "$revisionJsonPath" "$out/revision/metadata.json"
cp "$readmePath" "$out/readme/README.md"
read -r -a manifest_paths <<<"$manifestPaths"
read -r -a manifest_vars <<<"$manifestVars"
for i in "${!manifest_paths[@]}"; do
  var="${manifest_vars[$i]}Path"
  cp "${!var}" "$out/${manifest_paths[$i]}"
done

# Job directories: bin/ and out/ (plus the parent dirs of declared outputs) in one xargs pass,
# then one awk process writes every wrapper and parameters.json.
awk -F '\t' -v out="$out" '{
  d = out "/jobs/" $1
  print d "/bin"
  n = split($5, dirs, " ")
  for (i = 1; i <= n; i++) print d "/out/" dirs[i]
}' "$jobsTablePath" | xargs mkdir -p
awk -F '\t' -v out="$out" -v sh="$shell" '{
  d = out "/jobs/" $1
  w = d "/bin/" $2
  printf "#!%s\n# repx job %s (stage %s)\nexec %s \"$@\"\n", sh, $1, $2, $3 > w
  close(w)
  p = d "/parameters.json"
  print $4 > p
  close(p)
}' "$jobsTablePath"
find "$out/jobs" -path '*/bin/*' -type f -print0 | xargs -0 -r chmod 555

# host-tools: copies (not links into /nix/store) so they run on hosts without Nix.
# Regular files first, then symlinks re-pointed at the copied file of the same name
# (busybox applets), so nothing is copied twice.
ht="$out/host-tools/$hostToolsHash"
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

# store/: the closure of the stage scripts, for hosts without Nix (bound at /nix/store).
cat closure* | grep '^/nix/store/' | sort -u >store-paths
while read -r p; do cp -a "$p" "$out/store/"; done <store-paths

# images/<hash>/rootfs: a root filesystem skeleton for containerMode "unified". Its /nix/store
# is a mount point: the runner binds the host's store or the lab's store/ there.
if [ -n "$imageDir" ]; then
  img="$out/$imageDir"
  mkdir -p "$img/rootfs/bin" "$img/rootfs/usr/bin" "$img/rootfs/etc" "$img/rootfs/nix/store" \
    "$img/rootfs/tmp" "$img/rootfs/proc" "$img/rootfs/dev" "$img/rootfs/home"
  ln -s "$imageShell" "$img/rootfs/bin/sh"
  ln -s "$imageShell" "$img/rootfs/bin/bash"
  ln -s "$imageEnv" "$img/rootfs/usr/bin/env"
  printf 'root:x:0:0:root:/home:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n' >"$img/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$img/rootfs/etc/group"
  printf '127.0.0.1 localhost\n' >"$img/rootfs/etc/hosts"
  jq -n --slurpfile paths <(jq -R -s 'split("\n") | map(select(length > 0))' store-paths) \
    '{format: "repx-image/1", rootfs: "rootfs", store_paths: $paths[0]}' >"$img/image.json"
fi

# Integrity list of every regular file but lab-metadata.json itself. Paths travel
# NUL-separated and are turned into JSON strings by jq, so any file name is safe.
(cd "$out" && find . -type f -print0 | sort -z) >files.nul
# Piped, not redirected: busybox xargs given a regular file as stdin garbles long lists.
cat files.nul | (cd "$out" && xargs -0 -r sha256sum) | sed 's/^\\//' | cut -c1-64 >hashes.txt
jq -n --rawfile paths files.nul --rawfile hashes hashes.txt '
  [($paths | split("\u0000") | map(select(length > 0) | .[2:])), ($hashes | split("\n") | map(select(length > 0)))]
  | if (.[0] | length) != (.[1] | length) then error("file list and hashes differ in length") else . end
  | transpose | map({path: .[0], sha256: .[1]})' >files.json
lab_id="${out#/nix/store/}"
lab_id="${lab_id:0:32}"
jq -R -s 'split("\n") | map(select(length > 0))' store-paths >store-paths.json
jq -c --arg lab_id "$lab_id" --slurpfile paths store-paths.json --slurpfile files files.json \
  '. + {lab_id: $lab_id, store_paths: $paths[0], files: $files[0]}' "$labMetaJsonPath" >"$out/lab/lab-metadata.json"
