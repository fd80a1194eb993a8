{
  description = "repx run tests: a scatter-gather stage (4 work items, two steps) between simple stages";

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
