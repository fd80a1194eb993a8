{
  description = "repx tests: stages using real software of the package set (a C simulator built with stdenv.mkDerivation, Python + pandas + matplotlib, gnuplot)";

  inputs = {
    nixpkgs.url = "nixpkgs";
    repx.url = "repx";
  };

  outputs =
    { self, nixpkgs, repx }:
    {
      packages.x86_64-linux.default = import ./nix/lab.nix {
        pkgs = nixpkgs.legacyPackages.x86_64-linux;
        repx = repx.lib;
      };
    };
}
