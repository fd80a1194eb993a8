# A stand-in for real nixpkgs (tests only). It has nixpkgs' shape — `lib` with real function
# names, one derivation per package, multiple outputs where nixpkgs has them, `meta`,
# `passthru`, `pkgsStatic` — but is built from the raw binaries of the repx offline toolchain
# with an internal layout deliberately different from the toolchain's own packages. A lab that
# builds against both relies only on what nixpkgs guarantees: `${pkg}/bin/<program>`.
{ toolchain }:
let
  system = "x86_64-linux";
  manifest = builtins.fromJSON (builtins.readFile "${toolchain}/manifest.json");
  applets = manifest.busybox.applets;
  multicall = "${toolchain}/sources/busybox/busybox";

  lib = rec {
    version = "24.11pre-standin";
    inherit (builtins) attrNames attrValues concatStringsSep elem filter foldl' head
      isAttrs isList isString length listToAttrs mapAttrs;
    fix = f: let x = f x; in x;
    extends = f: rattrs: self: let super = rattrs self; in super // f self super;
    optional = cond: elem: if cond then [ elem ] else [ ];
    optionals = cond: elems: if cond then elems else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
    concatStrings = concatStringsSep "";
    filterAttrs = pred: set:
      listToAttrs (map (name: { inherit name; value = set.${name}; })
        (filter (name: pred name set.${name}) (attrNames set)));
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    hasPrefix = pref: str: builtins.substring 0 (builtins.stringLength pref) str == pref;
    toList = x: if builtins.isList x then x else [ x ];
    escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    escapeShellArgs = args: concatStringsSep " " (map escapeShellArg args);
    isDerivation = value: value.type or null == "derivation";
    versionAtLeast = v1: v2: builtins.compareVersions v1 v2 >= 0;
    getOutput = output: pkg:
      if !(pkg ? outputSpecified && pkg.outputSpecified) then pkg.${output} or pkg.out or pkg
      else pkg;
    getBin = getOutput "bin";
    getLib = getOutput "lib";
    getExe = pkg: "${getBin pkg}/bin/${pkg.meta.mainProgram or (builtins.parseDrvName pkg.name).name}";
    makeBinPath = pkgs: concatStringsSep ":" (map (p: "${getBin p}/bin") pkgs);
  };

  # stdenv.mkDerivation's result shape, without stdenv: meta, passthru (also merged in), and
  # every output carrying the same extras.
  mkDerivation = { pname, version, outputs ? [ "out" ], script
                 , meta ? { }, passthru ? { } }:
    let
      drv = derivation {
        name = "${pname}-${version}";
        inherit pname version system outputs;
        builder = multicall;
        args = [ "sh" "-euc" script ];
        PATH = "${toolchain}/sources/busybox";
      };
      extras = { inherit meta passthru; } // passthru;
      withOutputs = builtins.listToAttrs (map (o: { name = o; value = drv.${o} // extras // outputsSet; }) outputs);
      outputsSet = withOutputs;
    in
    drv // extras // withOutputs;

  bundleWrapper = { bash, dir, program }: ''
    #!${bash}/bin/bash
    exec ${dir}/ld.so --argv0 "$0" --inhibit-cache --library-path ${dir}/lib ${dir}/${program} "$@"
  '';

  # bin/<program> -> ../libexec/<pname>/busybox: each package owns its copy of the multicall
  # binary, no `busybox` among its bin names, no dependency on the busybox package.
  busyboxBacked = { pname, programs, mainProgram, description, extraScript ? "", outputs ? [ "out" ] }:
    mkDerivation {
      inherit pname outputs;
      version = "bb${manifest.busybox.version}";
      meta = { inherit mainProgram description; platforms = [ system ]; };
      passthru = { inherit programs; };
      script = ''
        mkdir -p "$out/bin" "$out/libexec/${pname}"
        cp ${multicall} "$out/libexec/${pname}/busybox"
        chmod 0555 "$out/libexec/${pname}/busybox"
        for p in ${lib.escapeShellArgs (builtins.filter (p: builtins.elem p applets) programs)}; do
          ln -s "../libexec/${pname}/busybox" "$out/bin/$p"
        done
        ${lib.concatMapStringsSep "\n" (o: ''mkdir -p "''$${o}/share/${o}" && echo ${pname} > "''$${o}/share/${o}/${pname}"'')
          (builtins.filter (o: o != "out") outputs)}
        ${extraScript}
      '';
    };

  # $out/libexec/<pname>/{<program>,ld.so,lib/} and a wrapper in bin/.
  bundled = { pname, program, m, description }: mkDerivation {
    inherit pname; version = m.version;
    meta = { mainProgram = program; inherit description; platforms = [ system ]; };
    script = ''
      d="$out/libexec/${pname}"
      mkdir -p "$out/bin" "$d/lib"
      cp ${toolchain}/sources/${program}/lib/* "$d/lib/"
      mv "$d/lib/ld-linux-x86-64.so.2" "$d/ld.so"
      cp ${toolchain}/sources/${program}/bin/${program} "$d/${program}"
      printf '%s' ${lib.escapeShellArg (bundleWrapper { bash = pkgs.bash; dir = "@d@"; inherit program; })} \
        | sed "s|@d@|$d|g" > "$out/bin/${program}"
      chmod 0555 "$out/bin/${program}" "$d/${program}" "$d/ld.so"
    '';
  };

  coreutilsPrograms = [
    "[" "base64" "basename" "cat" "chmod" "chown" "cp" "cut" "date" "dd" "df" "dirname" "du"
    "echo" "env" "expr" "false" "head" "id" "ln" "ls" "md5sum" "mkdir" "mktemp" "mv" "nproc"
    "od" "paste" "printf" "pwd" "readlink" "realpath" "rm" "rmdir" "seq" "sha256sum" "sleep"
    "sort" "stat" "tac" "tail" "tee" "test" "timeout" "touch" "tr" "true" "uname" "uniq" "wc"
    "yes"
  ];

  # Python, gnuplot, gcc/stdenv, the trivial builders, GNU bc/hello: the offline toolchain's own
  # derivations over its relocated Debian trees (real nixpkgs builds these from source; what
  # matters here is that an experiment reaches them by nixpkgs' names and shapes). The base
  # tools above stay busybox-backed, so a lab library relying on GNU-only options fails here.
  offline = import "${toolchain}/packages.nix" { src = toolchain; };
  fromOffline = lib.filterAttrs (n: _: offline ? ${n}) (lib.genAttrs [
    "python3" "python311" "python3Packages" "python311Packages" "gnuplot" "gcc" "gnumake" "cmake"
    "hello" "bc" "gnutar" "gzip" "diffutils" "stdenv" "stdenvNoCC" "runCommand" "runCommandLocal"
    "runCommandCC" "runCommandWith" "writeText" "writeTextFile" "writeTextDir" "writeScript"
    "writeScriptBin" "writeShellScript" "writeShellScriptBin" "writeShellApplication" "symlinkJoin"
    "runtimeShell"
  ] (n: offline.${n}));
  # nixpkgs' gawk has math (sqrt, log, 2^0.5), and its findutils is GNU find (the lab
  # builder walks the tree once with -fprint0/-fprintf): the stand-in takes those two from
  # the toolchain's GNU trees, not busybox.
  gnuOverrides = lib.filterAttrs (n: v: v != null && offline ? ${n} && offline.${n}.pname or "" == n)
    { gawk = offline.gawk or null; findutils = offline.findutils or null; };

  pkgs = fromOffline // rec {
    inherit lib system;

    bash = mkDerivation {
      pname = "bash"; version = manifest.bash.version;
      meta = { mainProgram = "bash"; description = "GNU Bourne-Again Shell"; platforms = [ system ]; };
      passthru = { shellPath = "/bin/bash"; };
      script = ''
        mkdir -p "$out/bin"
        cp ${toolchain}/sources/bash/bash "$out/bin/bash"
        chmod 0555 "$out/bin/bash"
        ln -s bash "$out/bin/sh"
      '';
    };

    coreutils = busyboxBacked {
      pname = "coreutils"; programs = coreutilsPrograms; mainProgram = "ls";
      description = "GNU Core Utilities"; outputs = [ "out" "info" ];
    };
    findutils = busyboxBacked { pname = "findutils"; programs = [ "find" "xargs" ]; mainProgram = "find"; description = "GNU Find Utilities"; };
    gnused = busyboxBacked { pname = "gnused"; programs = [ "sed" ]; mainProgram = "sed"; description = "GNU sed"; };
    gnugrep = busyboxBacked { pname = "gnugrep"; programs = [ "grep" "egrep" "fgrep" ]; mainProgram = "grep"; description = "GNU grep"; };
    gawk = mkDerivation {
      pname = "gawk"; version = "bb${manifest.busybox.version}";
      meta = { mainProgram = "gawk"; description = "GNU awk"; platforms = [ system ]; };
      script = ''
        mkdir -p "$out/bin" "$out/libexec/gawk"
        cp ${multicall} "$out/libexec/gawk/busybox"
        printf '#!%s\nexec %s awk "$@"\n' ${bash}/bin/bash "$out/libexec/gawk/busybox" > "$out/bin/gawk"
        chmod 0555 "$out/bin/gawk" "$out/libexec/gawk/busybox"
        ln -s gawk "$out/bin/awk"
      '';
    };

    # Real nixpkgs: outputs bin (the default), lib, out, … — `${pkgs.jq}/bin/jq` works,
    # `${pkgs.jq.out}/bin/jq` does not.
    jq = mkDerivation {
      pname = "jq"; version = manifest.jq.version;
      outputs = [ "bin" "lib" "out" ];
      meta = { mainProgram = "jq"; description = "Command-line JSON processor"; platforms = [ system ]; };
      script = ''
        mkdir -p "$bin/bin" "$lib/jq/lib" "$out/share/doc/jq"
        cp ${toolchain}/sources/jq/lib/* "$lib/jq/lib/"
        mv "$lib/jq/lib/ld-linux-x86-64.so.2" "$lib/jq/ld.so"
        cp ${toolchain}/sources/jq/bin/jq "$lib/jq/jq"
        printf '%s' ${lib.escapeShellArg (bundleWrapper { inherit bash; dir = "@lib@/jq"; program = "jq"; })} \
          | sed "s|@lib@|$lib|g" > "$bin/bin/jq"
        chmod 0555 "$bin/bin/jq" "$lib/jq/jq" "$lib/jq/ld.so"
        echo "jq (nixpkgs stand-in)" > "$out/share/doc/jq/README"
      '';
    };

    rsync = bundled { pname = "rsync"; program = "rsync"; m = manifest.rsync; description = "Fast incremental file transfer utility"; };
    bubblewrap = bundled { pname = "bubblewrap"; program = "bwrap"; m = manifest.bwrap; description = "Unprivileged sandboxing tool"; };

    shellcheck = mkDerivation {
      pname = "shellcheck"; version = manifest.shellcheck.version;
      outputs = [ "bin" "out" ];
      meta = { mainProgram = "shellcheck"; description = "Shell script analysis tool"; platforms = [ system ]; };
      script =
        if manifest.shellcheck.kind == "static" then ''
          mkdir -p "$bin/bin" "$out/share/doc/shellcheck"
          cp ${toolchain}/sources/shellcheck/bin/shellcheck "$bin/bin/shellcheck"
          chmod 0555 "$bin/bin/shellcheck"
          echo shellcheck > "$out/share/doc/shellcheck/README"
        '' else ''
          mkdir -p "$bin/bin" "$bin/libexec/shellcheck/lib" "$out/share/doc/shellcheck"
          cp ${toolchain}/sources/shellcheck/lib/* "$bin/libexec/shellcheck/lib/"
          mv "$bin/libexec/shellcheck/lib/ld-linux-x86-64.so.2" "$bin/libexec/shellcheck/ld.so"
          cp ${toolchain}/sources/shellcheck/bin/shellcheck "$bin/libexec/shellcheck/shellcheck"
          printf '%s' ${lib.escapeShellArg (bundleWrapper { inherit bash; dir = "@d@"; program = "shellcheck"; })} \
            | sed "s|@d@|$bin/libexec/shellcheck|g" > "$bin/bin/shellcheck"
          chmod 0555 "$bin/bin/shellcheck"
          echo shellcheck > "$out/share/doc/shellcheck/README"
        '';
    };

    # Real nixpkgs: a Go build with one output; here the binary sits in libexec, linked from bin.
    shfmt =
      if manifest.shfmt.kind == "static" then mkDerivation {
        pname = "shfmt"; version = manifest.shfmt.version;
        meta = { mainProgram = "shfmt"; description = "Shell parser and formatter"; platforms = [ system ]; };
        script = ''
          mkdir -p "$out/bin" "$out/libexec/shfmt"
          cp ${toolchain}/sources/shfmt/bin/shfmt "$out/libexec/shfmt/shfmt"
          chmod 0555 "$out/libexec/shfmt/shfmt"
          ln -s ../libexec/shfmt/shfmt "$out/bin/shfmt"
        '';
      }
      else bundled { pname = "shfmt"; program = "shfmt"; m = manifest.shfmt; description = "Shell parser and formatter"; };

    # Real pkgsStatic packages are single static binaries; these keep working after
    # `bin lib libexec` are copied out of the store, and never share a file name except the
    # identical busybox applet links of busybox/coreutils/…
    pkgsStatic = let
      relocatable = { pname, program, src, m }: mkDerivation {
        inherit pname; version = "static-" + m.version;
        meta = { mainProgram = program; platforms = [ system ]; };
        script = ''
          d="$out/libexec/${pname}-static"
          mkdir -p "$out/bin" "$d"
          cp -r ${src}/lib "$d/lib"
          cp ${src}/bin/${program} "$d/${program}"
          cat > "$out/bin/${program}" <<'EOF'
          #!/bin/sh
          self=$0
          while [ -L "$self" ]; do
            t=$(readlink "$self")
            case $t in /*) self=$t ;; *) self=$(dirname "$self")/$t ;; esac
          done
          here=$(cd "$(dirname "$self")/.." && pwd)
          d=$here/libexec/${pname}-static
          exec "$d/lib/ld-linux-x86-64.so.2" --argv0 "$0" --library-path "$d/lib" "$d/${program}" "$@"
          EOF
          chmod 0555 "$out/bin/${program}" "$d/${program}" "$d/lib/ld-linux-x86-64.so.2"
        '';
      };
      staticApplets = { pname, programs, mainProgram, extraScript ? "" }: mkDerivation {
        inherit pname; version = "static-bb${manifest.busybox.version}";
        meta = { inherit mainProgram; platforms = [ system ]; };
        script = ''
          mkdir -p "$out/bin"
          cp ${multicall} "$out/bin/busybox"
          chmod 0555 "$out/bin/busybox"
          cd "$out/bin"
          for p in ${lib.escapeShellArgs (builtins.filter (p: builtins.elem p applets) programs)}; do
            ln -s busybox "$p"
          done
          ${extraScript}
        '';
      };
    in {
      inherit lib system;
      bash = mkDerivation {
        pname = "bash"; version = "static-" + manifest.bash.version;
        meta = { mainProgram = "bash"; platforms = [ system ]; };
        passthru = { shellPath = "/bin/bash"; };
        script = ''
          mkdir -p "$out/bin"
          cp ${toolchain}/sources/bash/bash "$out/bin/bash"
          chmod 0555 "$out/bin/bash"
          ln -s bash "$out/bin/sh"
        '';
      };
      busybox = staticApplets { pname = "busybox"; programs = applets; mainProgram = "busybox"; };
      coreutils = staticApplets { pname = "coreutils"; programs = coreutilsPrograms; mainProgram = "ls"; };
      findutils = staticApplets { pname = "findutils"; programs = [ "find" "xargs" ]; mainProgram = "find"; };
      gnused = staticApplets { pname = "gnused"; programs = [ "sed" ]; mainProgram = "sed"; };
      gnugrep = staticApplets { pname = "gnugrep"; programs = [ "grep" "egrep" "fgrep" ]; mainProgram = "grep"; };
      gawk = staticApplets {
        pname = "gawk"; programs = [ "awk" ]; mainProgram = "gawk";
        extraScript = ''
          printf '#!/bin/sh\nexec "$(dirname "$0")/busybox" awk "$@"\n' > gawk
          chmod 0555 gawk
        '';
      };
      jq = relocatable { pname = "jq"; program = "jq"; src = "${toolchain}/sources/jq"; m = manifest.jq; };
      rsync = relocatable { pname = "rsync"; program = "rsync"; src = "${toolchain}/sources/rsync"; m = manifest.rsync; };
      bubblewrap = relocatable { pname = "bubblewrap"; program = "bwrap"; src = "${toolchain}/sources/bwrap"; m = manifest.bwrap; };
      shfmt =
        if manifest.shfmt.kind == "static" then shfmt
        else relocatable { pname = "shfmt"; program = "shfmt"; src = "${toolchain}/sources/shfmt"; m = manifest.shfmt; };
      shellcheck =
        if manifest.shellcheck.kind == "static" then shellcheck
        else relocatable { pname = "shellcheck"; program = "shellcheck"; src = "${toolchain}/sources/shellcheck"; m = manifest.shellcheck; };
    };
  };
in
pkgs // gnuOverrides
