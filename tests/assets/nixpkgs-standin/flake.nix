{
  description = "Stand-in for real nixpkgs, for repx tests only (see README.md)";

  # The raw binaries come from the repx offline toolchain directory. Tests point this input at
  # the directory they use: `--override-input toolchain path:DIR` when building this flake,
  # `--override-input nixpkgs/toolchain path:DIR` when it is an experiment's `nixpkgs`.
  inputs.toolchain = {
    url = "path:/var/lib/repx/toolchain";
    flake = false;
  };

  outputs = { self, toolchain }:
    let pkgs = import ./pkgs.nix { toolchain = toolchain.outPath; };
    in {
      lib = pkgs.lib;
      legacyPackages.x86_64-linux = pkgs;
    };
}
