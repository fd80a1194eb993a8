{
  description = "my-experiment: a repx experiment (Ising model sweep, pandas aggregate, matplotlib plot)";

  inputs = {
    # "nixpkgs" and "repx" are resolved through the flake registry. On a machine set up with
    # repx's tools/setup.sh, "nixpkgs" is the repx offline toolchain (no internet needed);
    # elsewhere it is nixpkgs itself. Pin either as usual, e.g.
    #   nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
    nixpkgs.url = "nixpkgs";
    repx.url = "repx";
  };

  outputs =
    { self, nixpkgs, repx }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
    in
    {
      packages.${system}.default = import ./nix/lab.nix {
        inherit pkgs;
        repx = repx.lib;
        gitHash = repx.lib.gitHashOf self;
      };
    };
}
