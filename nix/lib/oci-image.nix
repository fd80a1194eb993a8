# A lab image as an OCI image layout (build-oci-image.sh): what `--runtime podman|docker`
# loads. Keyed by the skeleton's inputs (the recipe, the shell and env it links to), not by
# the lab: one store path for every lab and revision built with the same packages.
{ tools, gnutar }:
let
  archOf = {
    "x86_64-linux" = "amd64";
    "aarch64-linux" = "arm64";
    "i686-linux" = "386";
    "armv7l-linux" = "arm";
    "riscv64-linux" = "riscv64";
    "powerpc64le-linux" = "ppc64le";
  };
in
derivation {
  name = "repx-oci-image";
  system = tools.system;
  builder = "${tools.bash}/bin/bash";
  args = [ ./build-oci-image.sh ];
  PATH = builtins.concatStringsSep ":" (map (p: "${p}/bin") [ tools.coreutils gnutar tools.jq ]);
  imageRootfs = ./image-rootfs.sh;
  imageShell = "${tools.bash}/bin/bash";
  imageEnv = "${tools.coreutils}/bin/env";
  arch = archOf.${tools.system} or (throw "repx: no OCI architecture name for system '${tools.system}'");
}
