# The repx Python package (import names `repx` and `repx_py`, the `repx` command) for a
# package set: real nixpkgs or the repx offline toolchain (nix/toolchain), whose
# python3Packages.buildPythonPackage builds it the same way (hatchling from the toolchain's
# PyPI wheels: docs/offline.md). It is a Python module of that set's python3, so jobs can use
#   pkgs.python3.withPackages (ps: [ ps.pandas ps.matplotlib pkgs.repx ])
# and `from repx_py import Experiment` (docs/python-api.md).
{ lib, python3Packages }:
let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;

  # Only what the package is made of: a change elsewhere (tests, docs) does not rebuild it.
  # (builtins only: the offline toolchain's lib is a small subset of nixpkgs')
  root = ./..;
  prefix = toString root + "/";
  wanted = [ "pyproject.toml" "README.md" "flake.nix" "src" "nix" "templates" ];
  source = builtins.path {
    path = root;
    name = "repx-lab-source";
    filter = path: type:
      let
        rel = builtins.substring (builtins.stringLength prefix) (-1) (toString path);
        parts = builtins.filter builtins.isString (builtins.split "/" rel);
        base = baseNameOf (toString path);
      in
      builtins.elem (builtins.head parts) wanted
      && base != "__pycache__" && builtins.match ".*\\.(pyc|egg-info)" base == null;
  };

  # the CLI's dependencies by nixpkgs attribute name (pyproject.toml [project].dependencies);
  # textual (only `repx tui` imports it) where the package set has it: nixpkgs and the
  # offline toolchain do; without it `repx tui` says it is missing
  depNames = [ "typer" "pydantic" "networkx" "graphviz" "rich" ]
    ++ (if python3Packages ? textual then [ "textual" ] else [ ]);
in
python3Packages.buildPythonPackage {
  pname = project.name;
  inherit (project) version;
  pyproject = true;
  src = source;
  build-system = [ python3Packages.hatchling ];
  dependencies = map (n: python3Packages.${n}) depNames;
  optional-dependencies.analysis = [ python3Packages.pandas ];
  # nixpkgs releases may trail the tested versions (pyproject.toml); the CLI uses their
  # stable API only
  pythonRelaxDeps = depNames;
  # the test suite needs Nix, bubblewrap and SLURM: it runs in CI, not in the build
  doCheck = false;
  pythonImportsCheck = [ "repx" "repx_py" ];
  meta = {
    inherit (project) description;
    mainProgram = "repx";
  };
}
