{
  description = "repx run tests: a sweep with a gather, a failing run, soft and hard run dependencies";

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
