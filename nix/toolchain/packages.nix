# The repx offline toolchain: a small nixpkgs-shaped package set assembled from Debian
# binaries by assemble.sh (see docs/offline.md). Built only with `builtins.derivation`: the
# builder of every package is the static busybox shell, so no stdenv and no /bin are needed
# and everything builds with the sandbox on.
#
# Called like nixpkgs: `import ./packages.nix { }`, `import ./. { system = "x86_64-linux"; }`
# or with `overlays = [ (final: prev: { ... }) ]`.
{ system ? null
, localSystem ? null
, crossSystem ? null
, config ? { }
, overlays ? [ ]
, src ? ./.
, ...
}:
let
  supportedSystem = "x86_64-linux";
  requestedSystem =
    if system != null then system
    else if localSystem != null then (localSystem.system or localSystem)
    else supportedSystem;
  checkedSystem =
    if requestedSystem != supportedSystem then
      throw "repx offline toolchain: only ${supportedSystem} is available (requested ${requestedSystem})"
    else if crossSystem != null then
      throw "repx offline toolchain: cross compilation is not available"
    else requestedSystem;

  manifest = builtins.fromJSON (builtins.readFile (src + "/manifest.json"));

  inherit (builtins) concatStringsSep filter elem map listToAttrs attrNames;

  # --- a few functions with nixpkgs' names and meaning ----------------------------------------
  lib = rec {
    version = "24.11-repx-offline";
    inherit (builtins) attrNames attrValues concatStringsSep elem filter foldl' hasAttr
      head isAttrs isFunction isList isString length listToAttrs mapAttrs tail toJSON;
    id = x: x;
    const = x: _: x;
    fix = f: let x = f x; in x;
    extends = f: rattrs: self: let super = rattrs self; in super // f self super;
    optional = cond: elem: if cond then [ elem ] else [ ];
    optionals = cond: elems: if cond then elems else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
    concatStrings = concatStringsSep "";
    concatLists = builtins.concatLists;
    filterAttrs = pred: set:
      listToAttrs (map (name: { inherit name; value = set.${name}; })
        (filter (name: pred name set.${name}) (attrNames set)));
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    nameValuePair = name: value: { inherit name value; };
    hasPrefix = pref: str: builtins.substring 0 (builtins.stringLength pref) str == pref;
    hasSuffix = suff: str:
      let ls = builtins.stringLength str; lf = builtins.stringLength suff;
      in lf <= ls && builtins.substring (ls - lf) lf str == suff;
    toList = x: if builtins.isList x then x else [ x ];
    unique = builtins.foldl' (acc: e: if builtins.elem e acc then acc else acc ++ [ e ]) [ ];
    inherit (builtins) intersectAttrs functionArgs removeAttrs;
    escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    escapeShellArgs = args: concatStringsSep " " (map escapeShellArg args);
    isDerivation = value: value.type or null == "derivation";
    getOutput = output: pkg:
      if !(pkg ? outputSpecified && pkg.outputSpecified) then pkg.${output} or pkg.out or pkg
      else pkg;
    getBin = getOutput "bin";
    getExe = pkg: "${getBin pkg}/bin/${pkg.meta.mainProgram or pkg.pname or (builtins.parseDrvName pkg.name).name}";
    makeBinPath = pkgs: concatStringsSep ":" (map (p: "${getBin p}/bin") pkgs);
    makeSearchPath = sub: paths: concatStringsSep ":" (map (p: "${p}/${sub}") paths);
  };

  # --- sources and builders ----------------------------------------------------------------
  source = name: builtins.path {
    path = src + "/sources/${name}";
    name = "repx-toolchain-${name}-source";
  };
  busyboxSource = source "busybox";
  applets = manifest.busybox.applets;

  shellQuote = s: "'${s}'";
  quoteAll = names: concatStringsSep " " (map shellQuote names);

  # One derivation, built by the static busybox shell; nixpkgs-like attributes on top.
  mkPackage = { pname, version, script, description, mainProgram ? pname, programs ? [ ]
              , origin ? null, static ? false }:
    let
      drv = derivation {
        # pkgsStatic variants keep pname and version, like nixpkgs; only the name differs.
        name = "${pname}-${if static then "static-" else ""}${version}";
        inherit pname version;
        system = checkedSystem;
        builder = "${busyboxSource}/busybox";
        args = [ "sh" "-euc" script ];
        PATH = "/path-not-set";
      };
    in
    drv // {
      meta = {
        inherit description mainProgram;
        platforms = [ supportedSystem ];
      } // lib.optionalAttrs (origin != null) { repxOrigin = origin; };
      inherit programs;
    };

  # Shell lines that set $p to the wrapper's own file, following symlinks (applet links).
  findSelf = ''
    p=$0
    case $p in */*) ;; *) p=./$p ;; esac
    while [ -L "$p" ]; do
      l=$(readlink "$p") || break
      case $l in /*) p=$l ;; *) p=''${p%/*}/$l ;; esac
    done
  '';

  # The relocatable wrapper of a bundled dynamic program (pkgsStatic): finds its package
  # directory from $0 (following symlinks), so `bin lib libexec` may be copied anywhere.
  relocatableWrapper = program: ''
    #!/bin/sh
    # repx offline toolchain: start the bundled ${program} with its own libraries.
  '' + findSelf + ''
    d=''${p%/*}/..
    case $d in /*) ;; *) d=$PWD/$d ;; esac
    exec "$d/lib/ld-linux-x86-64.so.2" --argv0 "$0" --inhibit-cache --library-path "$d/lib" "$d/libexec/${program}" "$@"
  '';

  # Same for a busybox applet that busybox knows under another name (gawk -> awk).
  relocatableAppletWrapper = applet: ''
    #!/bin/sh
  '' + findSelf + ''
    exec "''${p%/*}/busybox" ${applet} "$@"
  '';

  # The package names nixpkgs uses, with the programs of each that busybox provides.
  # `aliases`: program name -> busybox applet, for names busybox does not know itself.
  busyboxPackages = {
    coreutils = {
      description = "GNU Core Utilities (busybox applets)";
      mainProgram = "ls";
      programs = [
        "[" "arch" "base32" "base64" "basename" "cat" "chgrp" "chmod" "chown" "chroot" "cksum"
        "comm" "cp" "csplit" "cut" "date" "dd" "df" "dirname" "du" "echo" "env" "expand" "expr"
        "factor" "false" "fold" "groups" "head" "hostid" "id" "install" "join" "link" "ln"
        "logname" "ls" "md5sum" "mkdir" "mkfifo" "mknod" "mktemp" "mv" "nice" "nl" "nohup"
        "nproc" "od" "paste" "printenv" "printf" "pwd" "readlink" "realpath" "rm" "rmdir" "seq"
        "sha1sum" "sha256sum" "sha512sum" "shred" "shuf" "sleep" "sort" "split" "stat" "stty"
        "sum" "sync" "tac" "tail" "tee" "test" "timeout" "touch" "tr" "true" "truncate" "tsort"
        "tty" "uname" "unexpand" "uniq" "unlink" "users" "wc" "who" "whoami" "yes"
      ];
    };
    findutils = { description = "GNU Find Utilities (busybox applets)"; mainProgram = "find"; programs = [ "find" "xargs" ]; };
    gnused = { description = "GNU sed (busybox applet)"; mainProgram = "sed"; programs = [ "sed" ]; };
    gnugrep = { description = "GNU grep (busybox applets)"; mainProgram = "grep"; programs = [ "grep" "egrep" "fgrep" ]; };
    gawk = { description = "GNU awk (busybox awk)"; mainProgram = "gawk"; programs = [ "awk" ]; aliases = { gawk = "awk"; }; };
    gnutar = { description = "GNU tar (busybox applet)"; mainProgram = "tar"; programs = [ "tar" ]; };
    gzip = { description = "gzip (busybox applets)"; mainProgram = "gzip"; programs = [ "gzip" "gunzip" "zcat" ]; };
    bzip2 = { description = "bzip2 (busybox applets)"; mainProgram = "bzip2"; programs = [ "bzip2" "bunzip2" "bzcat" ]; };
    xz = { description = "xz (busybox applets)"; mainProgram = "xz"; programs = [ "xz" "unxz" "xzcat" "lzma" "unlzma" "lzcat" ]; };
    diffutils = { description = "GNU diffutils (busybox applets)"; mainProgram = "diff"; programs = [ "diff" "cmp" ]; };
    gnupatch = { description = "GNU patch (busybox applet)"; mainProgram = "patch"; programs = [ "patch" ]; };
    which = { description = "which (busybox applet)"; mainProgram = "which"; programs = [ "which" ]; };
    bc = { description = "bc and dc (busybox applets)"; mainProgram = "bc"; programs = [ "bc" "dc" ]; };
    procps = {
      description = "procps (busybox applets)"; mainProgram = "ps";
      programs = [ "free" "kill" "pgrep" "pidof" "pkill" "ps" "sysctl" "top" "uptime" "w" "watch" ];
    };
    util-linux = {
      description = "util-linux (busybox applets)"; mainProgram = "mount";
      programs = [
        "blkdiscard" "blockdev" "cal" "fallocate" "fdisk" "findfs" "flock" "fsfreeze" "fstrim"
        "getopt" "hexdump" "ionice" "last" "linux32" "linux64" "logger" "losetup" "mkswap"
        "more" "mount" "nsenter" "renice" "rev" "setarch" "setpriv" "setsid" "swapoff" "swapon"
        "switch_root" "taskset" "umount" "unshare" "uuidgen"
      ];
    };
    less = { description = "less (busybox applet)"; mainProgram = "less"; programs = [ "less" ]; };
    time = { description = "time (busybox applet)"; mainProgram = "time"; programs = [ "time" ]; };
    cpio = { description = "cpio (busybox applet)"; mainProgram = "cpio"; programs = [ "cpio" ]; };
    unzip = { description = "unzip (busybox applet)"; mainProgram = "unzip"; programs = [ "unzip" ]; };
    dos2unix = { description = "dos2unix (busybox applets)"; mainProgram = "dos2unix"; programs = [ "dos2unix" "unix2dos" ]; };
    hostname = { description = "hostname (busybox applets)"; mainProgram = "hostname"; programs = [ "hostname" "dnsdomainname" ]; };
  };

  bundleInfo = {
    jq = { pname = "jq"; description = "Lightweight and flexible command-line JSON processor"; m = manifest.jq; };
    rsync = { pname = "rsync"; description = "Fast incremental file transfer utility"; m = manifest.rsync; };
    bubblewrap = { pname = "bubblewrap"; description = "Unprivileged sandboxing tool"; m = manifest.bwrap; };
  };

  base = final: let
    inherit (final) bash busybox;
    bbVersion = manifest.busybox.version;

    # bin/<program> -> ../../<busybox>/bin/busybox (relative links into the busybox package)
    mkAppletPackage = pname: spec:
      let
        programs = filter (p: elem p applets) spec.programs;
        aliases = spec.aliases or { };
        bbName = baseNameOf "${busybox}";
        wrapper = applet: ''
          #!${bash}/bin/bash
          exec ${busybox}/bin/busybox ${applet} "$@"
        '';
      in
      mkPackage {
        inherit pname; version = bbVersion;
        inherit (spec) description mainProgram;
        programs = programs ++ attrNames aliases;
        origin = manifest.busybox.origin;
        script = ''
          mkdir -p "$out/bin"
          cd "$out/bin"
          for p in ${quoteAll programs}; do ln -s "../../${bbName}/bin/busybox" "$p"; done
        '' + concatStringsSep "" (map (name: ''
          printf '%s' ${lib.escapeShellArg (wrapper aliases.${name})} > ${shellQuote name}
          chmod 0555 ${shellQuote name}
        '') (attrNames aliases));
      };

    # bin/busybox (a copy) and bin/<program> -> busybox: self-contained, relocatable.
    mkStaticAppletPackage = pname: spec:
      let
        programs = filter (p: elem p applets) spec.programs;
        aliases = spec.aliases or { };
      in
      mkPackage {
        pname = pname; version = bbVersion; static = true;
        inherit (spec) description mainProgram;
        programs = programs ++ attrNames aliases;
        origin = manifest.busybox.origin;
        script = ''
          mkdir -p "$out/bin"
          cp ${busyboxSource}/busybox "$out/bin/busybox"
          chmod 0555 "$out/bin/busybox"
          cd "$out/bin"
          for p in ${quoteAll programs}; do ln -s busybox "$p"; done
        '' + concatStringsSep "" (map (name: ''
          printf '%s' ${lib.escapeShellArg (relocatableAppletWrapper aliases.${name})} > ${shellQuote name}
          chmod 0555 ${shellQuote name}
        '') (attrNames aliases));
      };

    # $out/libexec/<program>, $out/lib/*.so* + ld-linux-x86-64.so.2, $out/bin/<program> wrapper.
    mkBundle = { pname, description, m, relocatable ? false }:
      let
        program = m.program;
        wrapper =
          if relocatable then relocatableWrapper program
          else ''
            #!${bash}/bin/bash
            exec @out@/lib/ld-linux-x86-64.so.2 --argv0 "$0" --inhibit-cache --library-path @out@/lib @out@/libexec/${program} "$@"
          '';
      in
      mkPackage {
        inherit pname description;
        version = m.version; static = relocatable;
        mainProgram = program;
        programs = [ program ];
        origin = m.origin;
        script = ''
          mkdir -p "$out/bin" "$out/lib" "$out/libexec"
          cp ${source program}/lib/* "$out/lib/"
          cp ${source program}/bin/${program} "$out/libexec/${program}"
          printf '%s' ${lib.escapeShellArg wrapper} > "$out/bin/${program}.in"
          sed "s|@out@|$out|g" "$out/bin/${program}.in" > "$out/bin/${program}"
          rm "$out/bin/${program}.in"
          chmod 0444 "$out"/lib/*.so.*
          chmod 0555 "$out/bin/${program}" "$out/libexec/${program}" "$out/lib/ld-linux-x86-64.so.2"
        '';
      };

    # A program the toolchain holds either as a static binary (sources/<program>/bin/<program>,
    # relocatable as it is) or as a bundle with its libraries (manifest `kind`).
    staticOrBundle = { pname, description, m, relocatable }:
      if m.kind == "static" then
        mkPackage {
          inherit pname; version = m.version;
          description = "${description} (static build)";
          mainProgram = m.program;
          programs = [ m.program ];
          origin = m.origin;
          script = ''
            mkdir -p "$out/bin"
            cp ${source m.program}/bin/${m.program} "$out/bin/${m.program}"
            chmod 0555 "$out/bin/${m.program}"
          '';
        }
      else
        mkBundle { inherit pname description m relocatable; };

    shellcheckPackage = relocatable: staticOrBundle {
      pname = "shellcheck"; description = "Shell script analysis tool";
      m = manifest.shellcheck; inherit relocatable;
    };
    # The stage check's bash parser (`shfmt --to-json`).
    shfmtPackage = relocatable: staticOrBundle {
      pname = "shfmt"; description = "Shell parser, formatter and interpreter";
      m = manifest.shfmt; inherit relocatable;
    };

    appletPackages = builtins.mapAttrs mkAppletPackage busyboxPackages;
    bundles = builtins.mapAttrs (_: b: mkBundle b) bundleInfo;
    # GNU userland, Python, gnuplot, gcc from the relocated Debian trees (replacing the
    # busybox applets of the same names), and nixpkgs' builders on top of them.
    debianPackages = lib.optionalAttrs (manifest ? trees)
      (import ./debian.nix { inherit lib manifest mkPackage busyboxSource final; system = checkedSystem; });
    builders = lib.optionalAttrs (manifest ? trees)
      (import ./builders.nix { inherit lib final; system = checkedSystem; setupScript = src + "/stdenv-setup.sh"; });
  in
  appletPackages // bundles // debianPackages // builders // {
    inherit lib;
    system = checkedSystem;
    repxOffline = true;
    repxToolchainManifest = manifest;

    bash = mkPackage {
      pname = "bash"; version = manifest.bash.version;
      description = "GNU Bourne-Again Shell (static build)";
      programs = [ "bash" "sh" ];
      origin = manifest.bash.origin;
      script = ''
        mkdir -p "$out/bin"
        cp ${source "bash"}/bash "$out/bin/bash"
        chmod 0555 "$out/bin/bash"
        ln -s bash "$out/bin/sh"
      '';
    } // { shellPath = "/bin/bash"; };

    # bin/busybox and a relative link per applet; self-contained, so also pkgsStatic.busybox.
    busybox = mkPackage {
      pname = "busybox"; version = bbVersion;
      description = "Tiny versions of common UNIX utilities in a single small executable (static)";
      programs = [ "busybox" ] ++ applets;
      origin = manifest.busybox.origin;
      script = ''
        mkdir -p "$out/bin"
        cp ${busyboxSource}/busybox "$out/bin/busybox"
        chmod 0555 "$out/bin/busybox"
        cd "$out/bin"
        for p in ${quoteAll applets}; do ln -s busybox "$p"; done
      '';
    };

    shellcheck = shellcheckPackage false;
    shfmt = shfmtPackage false;

    runtimeShell = "${bash}/bin/bash";
    runtimeShellPackage = bash;

    # pkgs.callPackage: call a function with the package set's attributes it asks for.
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) final // args);

    # Packages that keep working after `bin lib libexec` are copied out of the Nix store (they
    # refer to no store path). Several of them may be merged into one directory: the only
    # shared names are identical files (bin/busybox, the applet links, lib/*.so*), plus bin/sh
    # (bash's and busybox's).
    pkgsStatic =
      builtins.mapAttrs mkStaticAppletPackage busyboxPackages
      // builtins.mapAttrs (_: b: mkBundle (b // { relocatable = true; })) bundleInfo
      // {
        inherit lib;
        system = checkedSystem;
        bash = final.bash;
        busybox = final.busybox;
        shellcheck = shellcheckPackage true;
        shfmt = shfmtPackage true;
      };
  };

  pkgs = lib.fix (builtins.foldl' (acc: overlay: lib.extends overlay acc) base overlays);
in
assert builtins.isAttrs config;
pkgs
