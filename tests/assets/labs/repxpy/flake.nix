{
  description = "repx tests: analysis code written for RepX (repx_py) inside a job, with pkgs.repx";

  inputs = {
    nixpkgs.url = "nixpkgs";
    repx.url = "repx";
    repx.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    { self, nixpkgs, repx }:
    let
      # pkgs.repx comes from the repx flake's overlay, as with RepX
      pkgs = import nixpkgs {
        system = "x86_64-linux";
        overlays = [ repx.overlays.default ];
      };
    in
    {
      packages.x86_64-linux.default = import ./nix/lab.nix {
        inherit pkgs;
        repx = repx.lib;
      };
    };
}
