# Builder of the lab derivation (run by bash inside the Nix sandbox).
# Every step is batched: a handful of processes whatever the number of jobs, because one
# process per job costs ~1 ms and labs reach 100,000 jobs.
# shellcheck shell=bash disable=SC1090,SC2154  # the variables come from the derivation's environment
set -euo pipefail
source "$imageRootfs"

mkdir -p "$out/lab" "$out/revision" "$out/jobs" "$out/readme" "$out/store"

if [ -n "${blueprintPath:-}" ]; then
  # The blueprint path (lab.nix): one python3 process expands the jobs and writes the
  # manifests and revision metadata, and here the jobs table, README and lab metadata.
  python3 "$expandLab" "$blueprintPath" "$out" "$PWD"
  jobsTablePath=$PWD/jobs-table
  readmePath=$PWD/readme
  labMetaJsonPath=$PWD/lab-meta.json
  manifestIdsPath=$PWD/manifest-ids
  read -r -a manifest_paths <manifest-paths
else
  cp "$revisionJsonPath" "$out/revision/metadata.json"
  read -r -a manifest_paths <<<"$manifestPaths"
  read -r -a manifest_vars <<<"$manifestVars"
  for i in "${!manifest_paths[@]}"; do
    var="${manifest_vars[$i]}Path"
    cp "${!var}" "$out/${manifest_paths[$i]}"
  done
fi
cp "$readmePath" "$out/readme/README.md"

# lab/job-index.tsv: where each job's record lies in its run manifest (byte offset and
# length of the JSON object on the job's line) and the jobs it reads, one line per job and
# manifest, so that a reader parses the jobs it needs only (docs/lab-format.md). Nix (or
# expand-lab.py) lists the ids and inputs in the order of the manifests' lines; awk measures
# the lines (bytes: LC_ALL=C).
for path in "${manifest_paths[@]}"; do
  LC_ALL=C awk -v m="$path" '/^"/ {
    n = length($0) - ($0 ~ /,$/)
    v = index($0, "\":") + 1
    printf "%s\t%d\t%d\n", m, at + v, n - v
  }
  { at += length($0) + 1 }' "$out/$path"
done >job-ranges.tsv
[ "$(wc -l <job-ranges.tsv)" = "$(wc -l <"$manifestIdsPath")" ] || {
  echo "repx: the run manifests and their job ids disagree (a bug of the lab builder)" >&2
  exit 1
}
{
  echo "repx-job-index/1"
  paste "$manifestIdsPath" job-ranges.tsv | awk -F '\t' -v OFS='\t' '{ print $1, $3, $4, $5, $2 }'
} >"$out/lab/job-index.tsv"

# Job directories: bin/ and out/ (plus the parent dirs of declared outputs) in one xargs pass,
# then one awk process writes every wrapper and parameters.json. The table has one row per
# executable (a scatter-gather job has several): a job's directories and parameters are
# written at its first row.
awk -F '\t' -v out="$out" '!seen[$1]++ {
  d = out "/jobs/" $1
  printf "%s\0", d "/bin"
  n = split($5, dirs, " ")
  for (i = 1; i <= n; i++) printf "%s\0", d "/out/" dirs[i]
}' "$jobsTablePath" | xargs -0 mkdir -p
# The wrappers it writes go to chmod (no second walk of jobs/).
awk -F '\t' -v out="$out" -v sh="$shell" '{
  d = out "/jobs/" $1
  w = d "/bin/" $2
  printf "#!%s\n# repx job %s (stage %s)\nexec %s \"$@\"\n", sh, $1, $2, $3 > w
  close(w)
  printf "%s\0", w
  if (!seen[$1]++) {
    p = d "/parameters.json"
    print $4 > p
    close(p)
  }
}' "$jobsTablePath" | xargs -0 -r chmod 555

# host-tools/<hash> and store/<name>: links to the store paths (built once, shared by every
# revision), not copies. lab/closure.json records each one's NAR hash, so a copy that
# carries them (`repx export`, `cp -rL`) can be checked; a lab in the store is Nix's.
mkdir -p "$out/host-tools"
ln -s "$hostToolsPath" "$out/host-tools/$hostToolsHash"
cp "$closureInfo" "$out/lab/closure.json"
jq -r '.entries[] | select(.path | startswith("store/")) | .store_path' "$closureInfo" >store-paths
# A few ln processes for all paths (`ln -s SRC… DIR` names each link after its target;
# busybox ln has no -t).
# shellcheck disable=SC2016  # "$@" and "$0" are the inner bash's
xargs -r bash -c 'ln -s "$@" "$0"' "$out/store" <store-paths

# images/<hash>/rootfs: a root filesystem skeleton for containerMode "unified" (one image)
# or "per-run" (one per run). Its /nix/store is a mount point: the runner binds the host's
# store or the lab's store/ there.
while IFS=$'\t' read -r dir run; do
  [ -n "$dir" ] || continue
  img="$out/$dir"
  [ -d "$img" ] && continue # runs with the same closure share an image
  image_rootfs "$img/rootfs" "$imageShell" "$imageEnv"
  if [ -z "$run" ]; then
    jq -R -s 'split("\n") | map(select(length > 0))' store-paths >image-paths.json
  else
    jq --arg run "$run" '.runs[$run]' "$closureInfo" >image-paths.json
  fi
  # oci: the image's OCI layout (podman, docker), a store path of the closure
  jq -n --slurpfile paths image-paths.json --arg oci "store/${imageOci#/nix/store/}" \
    '{format: "repx-image/1", rootfs: "rootfs", store_paths: $paths[0], oci: $oci}' >"$img/image.json"
done <<<"$imageSpecs"

# The stage checks' warnings (each check's output; usually empty): repx build shows them.
# shellcheck disable=SC2086  # $checks is a list of store paths (no spaces)
for c in $checks; do cat "$c"; done >check-warnings
[ ! -s check-warnings ] || cp check-warnings "$out/lab/check-warnings.txt"

# Integrity list: every entry but lab-metadata.json itself, as Nix sees the tree: regular
# files (sha256, executable bit), symlinks (target), directories without entries. Paths
# travel NUL-separated and are turned into JSON strings by jq, so any file name is safe.
# One walk of the tree (GNU find writes the four lists at once, links with their targets);
# the lists are sorted (jq sorts the links: codepoint order, as sort -z in the C locale).
lists=$PWD
(cd "$out" && find . \( -type f -fprint0 "$lists/files.raw" -fprintf "$lists/sizes.txt" '%s\n' \
  -perm -0100 -fprint0 "$lists/executables.raw" \) \
  -o \( -type l -fprintf "$lists/symlinks.nul" '%p\0%l\0' \) -o \( -type d -empty -fprint0 "$lists/empty-dirs.raw" \))
for list in files executables empty-dirs; do sort -z "$list.raw" >"$list.nul"; done
(cd "$out" && xargs -0 -r sha256sum) <files.nul | sed 's/^\\//' | cut -c1-64 >hashes.txt
jq -n --rawfile paths files.nul --rawfile hashes hashes.txt --rawfile exe executables.nul '
  ($exe | split("\u0000") | map(select(length > 0) | {key: .[2:], value: true}) | from_entries) as $x
  | [($paths | split("\u0000") | map(select(length > 0) | .[2:])), ($hashes | split("\n") | map(select(length > 0)))]
  | if (.[0] | length) != (.[1] | length) then error("file list and hashes differ in length") else . end
  | transpose | map({path: .[0], sha256: .[1]} + (if $x[.[0]] then {executable: true} else {} end))' >files.json
jq -n --rawfile links symlinks.nul '
  $links | split("\u0000") | .[:-1] | [range(0; length; 2) as $i | {path: .[$i][2:], target: .[$i + 1]}]
  | sort_by(.path)' >symlinks.json
jq -n --rawfile dirs empty-dirs.nul '$dirs | split("\u0000") | map(select(length > 2 and . != "./lab") | .[2:])' >empty-dirs.json
jq -R -s 'split("\n") | map(select(length > 0))' store-paths >store-paths.json
files_bytes=$(awk '{ n += $1 } END { printf "%d", n }' sizes.txt)
jq -j -c --argjson bytes "$files_bytes" --slurpfile paths store-paths.json --slurpfile files files.json --slurpfile links symlinks.json \
  --slurpfile dirs empty-dirs.json \
  '. + {store_paths: $paths[0], closure: "lab/closure.json", integrity: "repx-integrity/1", files: $files[0], files_bytes: $bytes, symlinks: $links[0], empty_dirs: $dirs[0]}' \
  "$labMetaJsonPath" >body.json

# The lab id commits to the content: the first 160 bits of the sha256 of "repx-lab-id/1",
# NUL and the metadata (holding the integrity list) without the id, as 32 digits of the Nix
# base-32 alphabet, most significant first. The id is written as the first member so a reader can strip and rehash it.
hash32() {
  local hex=$1 alphabet=0123456789abcdfghijklmnpqrsvwxyz id="" i v
  for ((i = 0; i < 40; i += 5)); do
    v=$((16#${hex:i:5}))
    id+="${alphabet:$((v >> 15)):1}${alphabet:$((v >> 10 & 31)):1}"
    id+="${alphabet:$((v >> 5 & 31)):1}${alphabet:$((v & 31)):1}"
  done
  printf '%s' "$id"
}
body_hex="$( { printf 'repx-lab-id/1\0'; cat body.json; } | sha256sum | cut -c1-64)"
lab_id="$(hash32 "$body_hex")"
{ printf '{"lab_id":"%s",' "$lab_id"; tail -c +2 body.json; echo; } >"$out/lab/lab-metadata.json"
