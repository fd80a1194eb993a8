{
  description = "repx: build and run reproducible computational experiments with Nix";

  # `nixpkgs` is resolved through the flake registry: on a machine set up with
  # tools/setup.sh it is the repx offline toolchain, elsewhere nixpkgs itself. Only the
  # package outputs (the CLI, the overlay's pkgs.repx, the dev shell) use it: the library
  # takes the package set from the experiment. An experiment may share its own with
  # `repx.inputs.nixpkgs.follows = "nixpkgs";`.
  inputs.nixpkgs.url = "nixpkgs";

  outputs =
    { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      # (not callPackage: the nixpkgs stand-in of the tests has none)
      repx = import ./nix/repx-package.nix { inherit (pkgs) lib python3Packages; };
    in
    {
      lib = import ./nix/lib;

      templates = {
        default = {
          path = ./templates/default;
          description = "Python (numpy) Ising-model simulation swept over seeds and temperatures; a dependent run aggregates it with pandas and plots it with matplotlib (PNG)";
        };
        minimal = {
          path = ./templates/minimal;
          description = "One run, one stage: the smallest repx experiment";
        };
      };

      # pkgs.repx: the Python package (repx, repx_py) and the `repx` command, for
      # `pkgs.python3.withPackages (ps: [ ps.pandas pkgs.repx ])` inside jobs.
      overlays.default = final: prev: {
        repx = final.callPackage ./nix/repx-package.nix { };
      };

      packages.${system} = {
        default = repx;
        inherit repx;
      };

      # `nix run <this flake> -- --help`
      apps.${system}.default = {
        type = "app";
        program = "${repx}/bin/repx";
      };

      devShells.${system}.default =
        let
          packages = [
            repx
            (pkgs.python3.withPackages (ps: [ repx ps.pandas ]))
          ];
        in
        pkgs.mkShell ({
          inherit packages;
          # `nix develop` dumps the environment into each of $outputs
          outputs = [ "out" ];
        } // (if pkgs.repxOffline or false then {
          # the offline toolchain's mkShell has no setup hooks that put `packages` on PATH
          PATH = pkgs.lib.makeBinPath packages;
        } else { }));
    };
}
