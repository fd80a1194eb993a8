# The repx Python package (import names `repx` and `repx_py`, the `repx` command) for a
# package set: real nixpkgs or the repx offline toolchain (nix/toolchain). It is a Python
# module of that set's python3, so jobs can use
#   pkgs.python3.withPackages (ps: [ ps.pandas ps.matplotlib pkgs.repx ])
# and `from repx_py import Experiment` (docs/python-api.md).
#
# nixpkgs: buildPythonPackage from the source (hatchling), as pip would install the wheel.
# Offline toolchain: it has no pip/hatchling; the package is pure Python, so its files are
# installed as the wheel lays them out (pyproject's packages and force-include), with a
# dist-info and the `repx` launcher on an environment of its dependencies (the toolchain's
# PyPI wheels: docs/offline.md).
{ lib, python3, python3Packages, runCommand, repxOffline ? false }:
let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;
  inherit (project) version;

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

  # the CLI's dependencies, by nixpkgs attribute name (pyproject.toml [project].dependencies)
  depNames = [ "typer" "pydantic" "networkx" "graphviz" "rich" ];
  deps = map (n: python3Packages.${n}) (builtins.filter (n: python3Packages ? ${n}) depNames);

  offline =
    let
      site = "lib/python${python3.pythonVersion}/site-packages";
      cliPython = python3.withPackages (_: deps);
      launcher = ''
        import sys
        sys.path.insert(0, "@site@")
        from repx.cli import main
        sys.exit(main())
      '';
      metadata = ''
        Metadata-Version: 2.1
        Name: ${project.name}
        Version: ${version}
        Summary: ${project.description}
        Requires-Python: ${project."requires-python"}
      '' + builtins.concatStringsSep "" (map (d: "Requires-Dist: ${d}\n") project.dependencies);
      drv = runCommand "${project.name}-${version}" { } ''
        site=$out/${site}
        mkdir -p "$site" "$out/bin"
        cp -r ${source}/src/repx ${source}/src/repx_py "$site/"
        chmod -R u+w "$site"
        mkdir -p "$site/repx/_flake"
        cp -r ${source}/flake.nix ${source}/nix ${source}/templates "$site/repx/_flake/"
        chmod -R u+w "$site/repx/_flake"
        info=$site/${builtins.replaceStrings [ "-" ] [ "_" ] project.name}-${version}.dist-info
        mkdir -p "$info"
        printf '%s' ${lib.escapeShellArg metadata} > "$info/METADATA"
        printf '[console_scripts]\nrepx = repx.cli:main\n' > "$info/entry_points.txt"
        printf 'repx\nrepx_py\n' > "$info/top_level.txt"
        { echo "#!${cliPython}/bin/python3"; printf '%s' ${lib.escapeShellArg launcher} | sed "s|@site@|$site|"; } > "$out/bin/repx"
        chmod 0555 "$out/bin/repx"
        # compiled once here (the store is read-only): deterministic, unchecked hashes
        PYTHONHASHSEED=0 ${python3}/bin/python3 -B -m compileall -q \
          --invalidation-mode unchecked-hash "$site/repx" "$site/repx_py" > /dev/null
      '';
    in
    drv // {
      pname = project.name;
      inherit version;
      pythonModule = python3;
      propagatedBuildInputs = deps;
      requiredPythonModules = deps;
      meta = (drv.meta or { }) // {
        description = project.description;
        mainProgram = "repx";
      };
    };

  nixpkgsPackage = python3Packages.buildPythonPackage {
    pname = project.name;
    inherit version;
    pyproject = true;
    src = source;
    build-system = [ python3Packages.hatchling ];
    dependencies = deps;
    optional-dependencies.analysis = [ python3Packages.pandas ];
    # nixpkgs releases may trail the tested versions (pyproject.toml); the CLI uses their
    # stable API only
    pythonRelaxDeps = depNames;
    # the test suite needs Nix, bubblewrap and SLURM: it runs in CI, not in the build
    doCheck = false;
    pythonImportsCheck = [ "repx" "repx_py" ];
    meta = {
      description = project.description;
      mainProgram = "repx";
    };
  };
in
if repxOffline then offline else nixpkgsPackage
