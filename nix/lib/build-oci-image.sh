# Builder of a lab image's OCI image layout (bash in the Nix sandbox): the image skeleton of
# image-rootfs.sh as one uncompressed layer, its config and manifest, written by hand
# (oci-layout, index.json, blobs/sha256/<digest>) so that podman and docker load it from the
# directory, without a registry or the network. Also a docker-archive manifest.json, which
# docker's `load` reads (it ignores index.json). The image id is the config's digest.
# Its own derivation, keyed by the skeleton's inputs only: every lab and every revision that
# uses the same shell and env shares it (a revision adds no image bytes), and the closure is
# never copied into it: the runner binds the store at /nix/store, as under bubblewrap.
# shellcheck shell=bash disable=SC1090,SC2154  # the variables come from the derivation's environment
set -euo pipefail
source "$imageRootfs"

image_rootfs rootfs "$imageShell" "$imageEnv"
# Reproducible: sorted names, fixed times, owner root, no atime/ctime records.
tar -C rootfs --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner \
  --mode='u+rwX,go+rX,go-w' --format=posix \
  --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' -cf layer.tar .

blobs="$out/blobs/sha256"
mkdir -p "$blobs"
# blob FILE: stores FILE under its digest, prints "<hex> <size>"
blob() {
  local hex size
  hex="$(sha256sum "$1" | cut -c1-64)"
  size="$(stat -c %s "$1")"
  cp "$1" "$blobs/$hex"
  printf '%s %s' "$hex" "$size"
}
read -r layer layer_size <<<"$(blob layer.tar)"
jq -n -c -S --arg arch "$arch" --arg layer "sha256:$layer" \
  '{architecture: $arch, os: "linux", config: {WorkingDir: "/"},
    rootfs: {type: "layers", diff_ids: [$layer]}}' | tr -d '\n' >config.json
read -r config config_size <<<"$(blob config.json)"
jq -n -c -S --arg c "sha256:$config" --argjson cs "$config_size" \
  --arg l "sha256:$layer" --argjson ls "$layer_size" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' |
  tr -d '\n' >manifest.json
read -r manifest manifest_size <<<"$(blob manifest.json)"
tag="repx-image:${config:0:16}"
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
jq -n -c -S --arg m "sha256:$manifest" --argjson ms "$manifest_size" --arg tag "$tag" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
                 annotations: {"org.opencontainers.image.ref.name": $tag}}]}' >"$out/index.json"
jq -n -c --arg c "blobs/sha256/$config" --arg l "blobs/sha256/$layer" --arg tag "$tag" \
  '[{Config: $c, RepoTags: [$tag], Layers: [$l]}]' >"$out/manifest.json"
# What the runner needs without parsing the layout: the image id and its tag.
jq -n -c -S --arg id "sha256:$config" --arg tag "$tag" \
  '{format: "repx-oci/1", id: $id, tag: $tag}' >"$out/repx-image.json"
