{
  description = "repx run tests: parameter values a shell would mangle";

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
