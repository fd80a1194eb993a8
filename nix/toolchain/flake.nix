{
  description = "repx offline toolchain: a nixpkgs-shaped package set assembled from Debian binaries";

  # No inputs: everything comes from this directory (see docs/offline.md). Registered in the
  # local flake registry as `nixpkgs`, so `inputs.nixpkgs.url = "nixpkgs";` resolves here.
  outputs = { self }:
    let
      system = "x86_64-linux";
      pkgs = import ./packages.nix { };
      isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
    in
    {
      lib = pkgs.lib;
      legacyPackages.${system} = pkgs;
      packages.${system} =
        builtins.listToAttrs (map (name: { inherit name; value = pkgs.${name}; })
          (builtins.filter (name: name != "runtimeShellPackage" && isDerivation pkgs.${name})
            (builtins.attrNames pkgs)));
    };
}
