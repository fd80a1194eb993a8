# Packages from the relocated Debian trees (assemble.sh -> debtree.py; docs/offline.md,
# "Relocated Debian trees"): GNU userland, Python 3 with numpy/scipy/pandas/matplotlib,
# gnuplot, gcc/g++/cmake and the `stdenv` built on them.
#
# A tree is one self-contained store path added by the assembler; here it is declared as a
# fixed-output derivation of the same hash, so Nix finds it valid and never builds it. The
# packages with nixpkgs' names are small derivations of links (and a few wrappers) into it.
{ lib, manifest, mkPackage, busyboxSource, system, final }:
let
  inherit (builtins) attrNames concatStringsSep filter elem map listToAttrs;
  inherit (final) bash;
  trees = manifest.trees or { };

  # upstream version of a Debian version: no epoch, no Debian revision, no +dfsg/+ds
  upstream = v:
    let
      noEpoch = let m = builtins.match "[0-9]+:(.*)" v; in if m == null then v else builtins.head m;
      noRev = let m = builtins.match "(.*)-[^-]*" noEpoch; in if m == null then noEpoch else builtins.head m;
      noDs = builtins.head (builtins.match "([^+~]*).*" noRev);
    in noDs;

  tree = name:
    let
      t = trees.${name} or (throw "repx offline toolchain: no Debian tree '${name}' in manifest.json; run nix/toolchain/assemble.sh again");
      drv = derivation {
        name = t.name;
        inherit system;
        builder = "${busyboxSource}/busybox";
        args = [ "sh" "-c" "echo 'repx offline toolchain: store path ${t.path} is missing (garbage-collected?); run nix/toolchain/assemble.sh again' >&2; exit 1" ];
        outputHashMode = "recursive";
        outputHashAlgo = "sha256";
        outputHash = t.narHash;
      };
    in
    if drv.outPath != t.path then throw "repx offline toolchain: tree '${name}' has path ${drv.outPath}, manifest.json says ${t.path}; run nix/toolchain/assemble.sh again"
    else drv // { debs = t.debs; };

  debVersion = t: deb: upstream t.debs.${deb}.version;

  # A package of links to a tree's launchers. A copy of a lab that dereferenced the links
  # (`cp -rL`, `rsync -rL`) holds plain copies of the launcher, with no loader beside them:
  # bin/.NAME.repx-origin names the launcher in the tree for them (see launcher.c).
  mkTreePackage = args: mkPackage (args // {
    script = args.script + ''
      for l in "$out"/bin/*; do
        [ -L "$l" ] || continue
        t=$(readlink -f "$l")
        [ -e "''${t%/*}/.repx-ld.so" ] || continue
        printf '%s\n' "$t" > "''${l%/*}/.''${l##*/}.repx-origin"
      done
    '';
  });

  # bin/<program> -> <tree>/bin/<program> for the programs of the given Debian packages.
  # Shell scripts (gzip's zcat, grep's egrep …) are copied with their `#!/bin/sh` replaced by
  # bash from the store (there is no /bin/sh in the sandbox); scripts for other interpreters
  # are left out.
  treePackage = { pname, treeName, debs, description, mainProgram ? pname, version ? null
                , extraPrograms ? [ ], exclude ? [ ], extraScript ? "", passthru ? { } }:
    let
      t = tree treeName;
      programs = lib.filter (p: !(elem p exclude))
        (lib.unique (builtins.concatLists (map (d: t.debs.${d}.programs) debs) ++ extraPrograms));
    in
    mkTreePackage {
      inherit pname description mainProgram programs;
      version = if version != null then version else debVersion t (builtins.head debs);
      origin = concatStringsSep " " (map (d: "debian:${d}=${t.debs.${d}.version}") debs);
      script = ''
        mkdir -p "$out/bin"
        for p in ${lib.escapeShellArgs programs}; do
          src=${t}/bin/$p
          [ -e "$src" ] || src=${t}/sbin/$p
          [ -e "$src" ] || continue
          if [ "$(head -c 2 "$src")" = '#!' ]; then
            case "$(head -n 1 "$src")" in
              '#!/bin/sh'*|'#! /bin/sh'*|'#!/bin/bash'*|'#!/usr/bin/env bash'*|'#!/usr/bin/env sh'*)
                { echo "#!${bash}/bin/bash"; tail -n +2 "$src"; } > "$out/bin/$p"
                chmod 0555 "$out/bin/$p" ;;
            esac
          else
            ln -s "$src" "$out/bin/$p"
          fi
        done
        ${extraScript}
      '';
    } // passthru // { tree = t; };

  gnu = spec: treePackage (spec // { treeName = "gnu"; });

  # --- Python -----------------------------------------------------------------------------------
  py = tree "python3";
  pyVersion = debVersion py "python3.11";
  pythonVersion = "3.11";
  sitePackages = "lib/python${pythonVersion}/site-packages";

  # nixpkgs attribute names of Debian's python3-* packages
  pyNames = {
    "python3-dateutil" = "python-dateutil";
    "python3-tz" = "pytz";
    "python3-pil" = "pillow";
    "python3-pkg-resources" = "setuptools";
    "python3-attr" = "attrs";
  };
  pyDebs = filter (d: py.debs.${d} ? site) (attrNames py.debs);
  pyAttr = deb: pyNames.${deb} or (builtins.substring 8 100 deb);

  # Pinned PyPI wheels (pywheels.py): newer than Debian's, they replace its packages of the
  # same name (pydantic v2, typer, rich, networkx …). Absent when the assembler had none.
  wheelTree = if trees ? pywheels then tree "pywheels" else null;
  wheels = if wheelTree == null then { } else trees.pywheels.wheels;
  wheelPackages = self: builtins.mapAttrs (name: w:
    let deps = map (d: self.${d}) w.depends;
    in mkTreePackage {
      pname = name;
      inherit (w) version;
      description = "Python ${pythonVersion} package ${name} (PyPI wheel ${w.wheel})";
      origin = "pypi:${name}==${w.version}";
      script = ''
        mkdir -p "$out/${sitePackages}"
        for e in ${lib.escapeShellArgs w.site}; do
          ln -s "${wheelTree}/site/${name}/$e" "$out/${sitePackages}/$e"
        done
      '';
    } // {
      pythonModule = python3;
      propagatedBuildInputs = deps;
      requiredPythonModules = deps;
    }) wheels;

  pythonPackages = lib.fix (self: debianPythonPackages self // wheelPackages self // {
    inherit buildPythonPackage;
  });

  # nixpkgs' python3Packages.buildPythonPackage for pure-Python projects with a pyproject.toml:
  # the wheel is built with the project's PEP 517 backend (from `build-system`, e.g. the
  # toolchain's hatchling wheel), unpacked into lib/python3.11/site-packages, its console
  # scripts written for an environment of `dependencies`. nixpkgs' other arguments
  # (pythonRelaxDeps, doCheck, optional-dependencies, …) are accepted; tests are not run.
  pyBuildBackend = ''
    import importlib, os, sys, tomllib
    src, dist = sys.argv[1:3]
    os.chdir(src)
    with open("pyproject.toml", "rb") as f:
        cfg = tomllib.load(f).get("build-system", {})
    sys.path[:0] = [os.path.join(src, p) for p in cfg.get("backend-path", [])]
    module, _, attrs = cfg.get("build-backend", "setuptools.build_meta:__legacy__").partition(":")
    backend = importlib.import_module(module)
    for a in filter(None, attrs.split(".")):
        backend = getattr(backend, a)
    os.makedirs(dist, exist_ok=True)
    print(backend.build_wheel(dist))
  '';
  pyInstallWheel = ''
    import configparser, os, shutil, sys, zipfile
    wheel, out, site, python = sys.argv[1:5]
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    for data in [d for d in os.listdir(site) if d.endswith(".data")]:
        for kind in os.listdir(os.path.join(site, data)):
            where = {"purelib": site, "platlib": site, "scripts": os.path.join(out, "bin")}.get(kind, out)
            shutil.copytree(os.path.join(site, data, kind), where, dirs_exist_ok=True)
        shutil.rmtree(os.path.join(site, data))
    info = [d for d in os.listdir(site) if d.endswith(".dist-info")]
    points = configparser.ConfigParser(delimiters=("=",))
    points.optionxform = str
    for d in info:
        points.read(os.path.join(site, d, "entry_points.txt"))
    scripts = points["console_scripts"] if points.has_section("console_scripts") else {}
    os.makedirs(os.path.join(out, "bin"), exist_ok=True)
    for name, target in scripts.items():
        module, _, attrs = target.strip().partition(":")
        path = os.path.join(out, "bin", name)
        with open(path, "w") as f:
            f.write(f"#!{python}\nimport importlib, sys\nsys.path.insert(0, {site!r})\n"
                    f"f = importlib.import_module({module!r})\n"
                    f"for a in {attrs.split('.')!r}:\n    f = getattr(f, a) if a else f\n"
                    "sys.exit(f())\n")
        os.chmod(path, 0o555)
  '';
  buildPythonPackage = { pname, version, src, build-system ? [ ], dependencies ? [ ]
    , propagatedBuildInputs ? [ ], pythonImportsCheck ? [ ], meta ? { }, passthru ? { }, ... }:
    let
      deps = dependencies ++ propagatedBuildInputs;
      builder = python3.withPackages (_: build-system);
      runtime = python3.withPackages (_: deps);
      drv = mkPackage {
        inherit pname version;
        description = meta.description or "Python ${pythonVersion} package ${pname}";
        mainProgram = meta.mainProgram or pname;
        script = ''
          export HOME=$PWD PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=315532800
          cp -r ${src} source
          chmod -R u+w source
          printf '%s' ${lib.escapeShellArg pyBuildBackend} > build.py
          printf '%s' ${lib.escapeShellArg pyInstallWheel} > install.py
          ${builder}/bin/python3 -B build.py "$PWD/source" "$PWD/dist"
          site=$out/${sitePackages}
          mkdir -p "$site"
          for w in dist/*.whl; do ${builder}/bin/python3 -B install.py "$w" "$out" "$site" ${runtime}/bin/python3; done
          ${python3}/bin/python3 -B -m compileall -q --invalidation-mode unchecked-hash "$site" > /dev/null
          for m in ${lib.escapeShellArgs pythonImportsCheck}; do
            PYTHONPATH=$site ${runtime}/bin/python3 -B -c "import $m"
          done
        '';
      };
    in
    drv // passthru // {
      pythonModule = python3;
      propagatedBuildInputs = deps;
      requiredPythonModules = deps;
      meta = drv.meta // meta;
    };

  debianPythonPackages = self: listToAttrs (map (deb: {
    name = pyAttr deb;
    value =
      let
        deps = map (d: self.${pyAttr d}) (filter (d: elem d pyDebs) py.debs.${deb}.depends);
      in
      mkTreePackage {
        pname = pyAttr deb;
        version = upstream py.debs.${deb}.version;
        description = "Python ${pythonVersion} package ${pyAttr deb} (Debian ${deb})";
        origin = "debian:${deb}=${py.debs.${deb}.version}";
        script = ''
          mkdir -p "$out/${sitePackages}"
          for e in ${lib.escapeShellArgs py.debs.${deb}.site}; do
            ln -s "${py}/site/${deb}/$e" "$out/${sitePackages}/$e"
          done
        '';
      } // {
        pythonModule = python3;
        propagatedBuildInputs = deps;
        requiredPythonModules = deps;
      };
  }) pyDebs);

  # every package with its dependencies, each once
  pyClosure = pkgs:
    let
      go = seen: todo:
        if todo == [ ] then seen
        else
          let p = builtins.head todo; rest = builtins.tail todo;
          in if elem p.pname (map (s: s.pname) seen) then go seen rest
          else go (seen ++ [ p ]) (rest ++ (p.requiredPythonModules or [ ]));
    in go [ ] pkgs;

  # A venv-shaped environment: bin/python3 -> the interpreter, pyvenv.cfg, and site-packages
  # with links to the chosen packages (those alone import; sys.prefix is the environment).
  pythonEnv = chosen:
    let all = pyClosure chosen;
    in mkTreePackage {
      pname = "python3-env"; version = pyVersion;
      description = "Python ${pyVersion} with ${concatStringsSep " " (map (p: p.pname) all)}";
      mainProgram = "python3";
      programs = [ "python" "python3" "python${pythonVersion}" ];
      script = ''
        mkdir -p "$out/bin" "$out/${sitePackages}"
        for p in python python3 python${pythonVersion}; do ln -s "${py}/bin/$p" "$out/bin/$p"; done
        printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' "${py}/bin" "${pyVersion}" > "$out/pyvenv.cfg"
        for pkg in ${lib.escapeShellArgs (map toString all)}; do
          for e in "$pkg/${sitePackages}"/*; do
            # entries of the packages above are links into a tree; a package built into its
            # own store path (pkgs.repx) holds real directories
            t=$e; [ -L "$e" ] && t=$(readlink "$e")
            [ -e "$out/${sitePackages}/''${e##*/}" ] || ln -s "$t" "$out/${sitePackages}/''${e##*/}"
          done
        done
      '';
    } // { inherit pythonVersion sitePackages; python = python3; };

  python3 = mkTreePackage {
    pname = "python3"; version = pyVersion;
    description = "Python ${pyVersion} (Debian python3.11, relocated)";
    mainProgram = "python3";
    programs = [ "python" "python3" "python${pythonVersion}" ];
    origin = "debian:python3.11=${py.debs."python3.11".version}";
    script = ''
      mkdir -p "$out/bin"
      for p in python python3 python${pythonVersion}; do ln -s "${py}/bin/$p" "$out/bin/$p"; done
    '';
  } // rec {
    inherit pythonVersion sitePackages;
    pkgs = pythonPackages;
    withPackages = f: let env = pythonEnv (f pythonPackages); in env // { interpreter = "${env}/bin/python3"; };
    buildEnv = { extraLibs ? [ ], ... }: withPackages (_: extraLibs);
    executable = "python${pythonVersion}";
    interpreter = "${python3}/bin/python${pythonVersion}";
    libPrefix = "python${pythonVersion}";
    isPy3 = true;
    tree = py;
  };

  # --- gnuplot --------------------------------------------------------------------------------
  gp = tree "gnuplot";
  gnuplot = mkTreePackage {
    pname = "gnuplot"; version = debVersion gp "gnuplot-nox";
    description = "Portable command-line driven graphing utility (Debian gnuplot-nox: dumb, png, pngcairo, svg, pdfcairo, postscript)";
    programs = [ "gnuplot" ];
    origin = "debian:gnuplot-nox=${gp.debs.gnuplot-nox.version}";
    # Fonts and PostScript prologues are found through the environment, as with nixpkgs'
    # wrapped gnuplot.
    script = ''
      mkdir -p "$out/bin" "$out/etc/fonts"
      cat > "$out/etc/fonts/fonts.conf" <<EOF
      <?xml version="1.0"?>
      <!DOCTYPE fontconfig SYSTEM "fonts.dtd">
      <fontconfig><dir>${gp}/share/fonts</dir><cachedir>/tmp/repx-fontconfig-cache</cachedir></fontconfig>
      EOF
      cat > "$out/bin/gnuplot" <<EOF
      #!${bash}/bin/bash
      export FONTCONFIG_FILE=\''${FONTCONFIG_FILE:-$out/etc/fonts/fonts.conf}
      export GNUPLOT_PS_DIR=\''${GNUPLOT_PS_DIR:-${gp}/share/gnuplot/gnuplot/5.4/PostScript}
      export GDFONTPATH=\''${GDFONTPATH:-${gp}/share/fonts/truetype/dejavu}
      export GNUPLOT_DEFAULT_GDFONT=\''${GNUPLOT_DEFAULT_GDFONT:-DejaVuSans}
      exec ${gp}/bin/gnuplot "\$@"
      EOF
      chmod 0555 "$out/bin/gnuplot"
    '';
  };

  # --- C/C++ compilers, make, cmake, stdenv ------------------------------------------------------
  gccTree = tree "gcc";
  glibcTree = tree "glibc";
  gccVersion = debVersion gccTree "gcc-12";
  # Programs the compiler builds run with the loader and libraries of the glibc tree (its own
  # store path, so a program refers to ~10 MiB, not to all of gcc).
  glibcLib = "${glibcTree}/lib/x86_64-linux-gnu";
  ccWrapper = compiler: ''
    #!${bash}/bin/bash
    # repx offline toolchain: Debian's ${compiler} with its own sysroot; programs it links use
    # the loader of the glibc tree. NIX_CFLAGS_COMPILE / NIX_LDFLAGS as set by stdenv.
    link=(-Wl,--dynamic-linker=${glibcLib}/ld-linux-x86-64.so.2 -Wl,-rpath,${glibcLib})
    for a in "$@"; do case $a in -c|-S|-E|-M|-MM) link=() ;; esac; done
    # shellcheck disable=SC2086
    exec ${gccTree}/bin/${compiler} --sysroot=${gccTree} -B${gccTree}/bin/ $NIX_CFLAGS_COMPILE "$@" "''${link[@]}" $NIX_LDFLAGS
  '';
  gcc = mkTreePackage {
    pname = "gcc"; version = gccVersion;
    description = "GNU Compiler Collection ${gccVersion} (C, C++; Debian gcc-12, relocated)";
    mainProgram = "gcc";
    programs = [ "cc" "c++" "gcc" "g++" "cpp" "ar" "as" "ld" "nm" "objcopy" "objdump" "ranlib" "readelf" "size" "strip" "strings" ];
    origin = "debian:gcc-12=${gccTree.debs.gcc-12.version} debian:binutils=${gccTree.debs.binutils.version}";
    script = ''
      mkdir -p "$out/bin"
      w() { printf '%s' "$2" > "$out/bin/$1"; chmod 0555 "$out/bin/$1"; }
      w gcc ${lib.escapeShellArg (ccWrapper "gcc-12")}
      w g++ ${lib.escapeShellArg (ccWrapper "g++-12")}
      ln -s gcc "$out/bin/cc"
      ln -s g++ "$out/bin/c++"
      ln -s ${gccTree}/bin/cpp-12 "$out/bin/cpp"
      for p in ar as ld nm objcopy objdump ranlib readelf size strip strings; do ln -s "${gccTree}/bin/$p" "$out/bin/$p"; done
    '';
  } // { isGNU = true; isClang = false; cc = gcc; libc = glibcTree; targetPrefix = ""; };

  gnumake = treePackage {
    pname = "gnumake"; treeName = "gnu"; debs = [ "make" ];
    description = "GNU make (runs recipes with bash from the store: there is no /bin/sh in the sandbox)";
    mainProgram = "make"; exclude = [ "make" "gmake" "make-first-existing-target" ];
    extraPrograms = [ ];
    extraScript = ''
      printf '#!%s\nexec %s SHELL=%s "$@"\n' "${bash}/bin/bash" "${(tree "gnu")}/bin/make" "${bash}/bin/bash" > "$out/bin/make"
      chmod 0555 "$out/bin/make"
      ln -s make "$out/bin/gmake"
    '';
  } // { programs = [ "make" "gmake" ]; };

  cmake = treePackage {
    pname = "cmake"; treeName = "gcc"; debs = [ "cmake" ];
    description = "Cross-platform build system generator (Debian cmake)";
  };
in
{
  inherit python3 gnuplot gcc gnumake cmake;
  python311 = python3;
  python3Packages = pythonPackages;
  python311Packages = pythonPackages;
  repxDebianTrees = builtins.mapAttrs (n: _: tree n) trees;
  gccStdenvParts = { inherit gcc gnumake glibcTree gccTree; };

  coreutils = gnu { pname = "coreutils"; debs = [ "coreutils" ]; description = "GNU Core Utilities"; mainProgram = "ls"; };
  gawk = gnu { pname = "gawk"; debs = [ "gawk" ]; description = "GNU awk"; extraPrograms = [ "awk" ]; exclude = [ "gawkbug" ]; };
  gnused = gnu { pname = "gnused"; debs = [ "sed" ]; description = "GNU sed"; mainProgram = "sed"; };
  gnugrep = gnu { pname = "gnugrep"; debs = [ "grep" ]; description = "GNU grep"; mainProgram = "grep"; };
  findutils = gnu { pname = "findutils"; debs = [ "findutils" ]; description = "GNU Find Utilities"; mainProgram = "find"; };
  diffutils = gnu { pname = "diffutils"; debs = [ "diffutils" ]; description = "GNU diffutils"; mainProgram = "diff"; };
  gnutar = gnu { pname = "gnutar"; debs = [ "tar" ]; description = "GNU tar"; mainProgram = "tar"; };
  gzip = gnu { pname = "gzip"; debs = [ "gzip" ]; description = "GNU zip"; };
  bzip2 = gnu { pname = "bzip2"; debs = [ "bzip2" ]; description = "bzip2 compressor"; };
  xz = gnu { pname = "xz"; debs = [ "xz-utils" ]; description = "XZ Utils"; mainProgram = "xz"; };
  gnupatch = gnu { pname = "gnupatch"; debs = [ "patch" ]; description = "GNU patch"; mainProgram = "patch"; };
  bc = gnu { pname = "bc"; debs = [ "bc" "dc" ]; description = "GNU bc and dc"; };
  hello = gnu { pname = "hello"; debs = [ "hello" ]; description = "GNU hello: a program that produces a familiar, friendly greeting"; };
}
