# The root filesystem skeleton of a lab image (sourced by build-lab.sh, which writes it as
# images/<hash>/rootfs for bubblewrap, and by build-oci-image.sh, which packs the same tree
# as the one layer of the image's OCI layout, for podman and docker): /bin/sh, /bin/bash and
# /usr/bin/env link into the store, a minimal /etc, and empty mount points. Its /nix/store is
# a mount point: the runner binds the host's store or the lab's store/ there, so an image
# never holds a copy of the closure.
# shellcheck shell=bash
image_rootfs() { # image_rootfs DIR SHELL ENV
  local root=$1 shell=$2 env=$3
  mkdir -p "$root/bin" "$root/usr/bin" "$root/etc" "$root/nix/store" \
    "$root/tmp" "$root/proc" "$root/dev" "$root/home"
  ln -s "$shell" "$root/bin/sh"
  ln -s "$shell" "$root/bin/bash"
  ln -s "$env" "$root/usr/bin/env"
  printf 'root:x:0:0:root:/home:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
}
