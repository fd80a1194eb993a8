# nixpkgs' trivial builders and stdenv.mkDerivation, with nixpkgs' argument shapes, on the
# offline toolchain's GNU tools, bash and gcc (docs/offline.md, "Builders").
{ lib, final, system, setupScript }:
let
  inherit (builtins) isFunction isAttrs isList concatStringsSep filter attrNames removeAttrs;
  inherit (final) bash coreutils findutils diffutils gnused gnugrep gawk gnutar gzip bzip2 xz gnupatch gnumake shellcheck;

  baseTools = [ coreutils findutils diffutils gnused gnugrep gawk gnutar gzip bzip2 xz gnupatch gnumake bash ];
  shell = "${bash}/bin/bash";

  # Attributes that only make sense at evaluation time never reach the derivation.
  evalOnly = [ "meta" "passthru" "shellHook" "finalPackage" "overrideAttrs" ];

  mkStdenv = { cc ? null, name ? "stdenv" }:
    let
      stdenv = {
        inherit cc shell system;
        name = "${name}-linux";
        shellPackage = bash;
        shellDryRun = "${shell} -n -O extglob";
        isLinux = true; isDarwin = false; isx86_64 = true; isAarch64 = false;
        buildPlatform = platform; hostPlatform = platform; targetPlatform = platform;
        initialPath = baseTools;
        inherit mkDerivation;
      };
      platform = { inherit system; isLinux = true; isDarwin = false; isx86_64 = true; isAarch64 = false; isStatic = false; parsed.kernel.name = "linux"; };

      mkDerivation = fArgs:
        let
          args = if isFunction fArgs then fArgs (args // args.passthru or { }) else fArgs;
          pname = args.pname or null;
          name = args.name or (if pname != null then "${pname}-${toString (args.version or "")}" else throw "stdenv.mkDerivation: give `name` or `pname` and `version`");
          serialisable = v: !(isFunction v) && !(isAttrs v && !(v ? outPath));
          drvArgs = lib.filterAttrs (k: v: !(lib.elem k evalOnly) && serialisable v) args;
          drv = derivation (drvArgs // {
            inherit name system;
            builder = shell;
            args = [ "-e" setupScript ];
            stdenvInitialPath = baseTools ++ lib.optional (cc != null) cc;
            stdenvShell = shell;
            nativeBuildInputs = args.nativeBuildInputs or [ ];
            buildInputs = (args.buildInputs or [ ]) ++ (args.propagatedBuildInputs or [ ]);
          });
          meta = { platforms = [ system ]; } // args.meta or { }
            // lib.optionalAttrs (pname != null) { mainProgram = args.meta.mainProgram or pname; };
        in
        drv // (args.passthru or { }) // {
          inherit meta;
          passthru = args.passthru or { };
          overrideAttrs = f: mkDerivation (args // (if isFunction f then f args else f));
        } // lib.optionalAttrs (pname != null) { inherit pname; version = toString (args.version or ""); };
    in
    stdenv;

  stdenv = mkStdenv { cc = final.gcc; };
  stdenvNoCC = mkStdenv { name = "stdenv-nocc"; };

  runCommandWith = { name, stdenv ? stdenvNoCC, derivationArgs ? { } }: buildCommand:
    stdenv.mkDerivation ({ inherit name buildCommand; passAsFile = [ "buildCommand" ]; } // derivationArgs);

  runCommand = name: env: buildCommand:
    runCommandWith { inherit name; derivationArgs = env; } buildCommand;

  writeTextFile =
    { name, text, executable ? false, destination ? "", checkPhase ? "", meta ? { }
    , allowSubstitutes ? false, preferLocalBuild ? true, derivationArgs ? { } }:
    assert destination != "" -> lib.hasPrefix "/" destination;
    runCommandWith {
      inherit name;
      derivationArgs = {
        inherit text executable checkPhase allowSubstitutes preferLocalBuild meta;
        passAsFile = [ "text" ];
      } // derivationArgs;
    } ''
      target=$out${destination}
      mkdir -p "$(dirname "$target")"
      cp "$textPath" "$target"
      if [ -n "$executable" ]; then chmod +x "$target"; fi
      eval "$checkPhase"
    ''
    // lib.optionalAttrs (lib.hasPrefix "/bin/" destination) { meta = { mainProgram = baseNameOf destination; } // meta; };

  writeText = name: text: writeTextFile { inherit name text; };
  writeTextDir = path: text: writeTextFile { inherit text; name = baseNameOf path; destination = "/${path}"; };
  writeScript = name: text: writeTextFile { inherit name text; executable = true; };
  writeScriptBin = name: text: writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
  writeShellScript = name: text: writeTextFile {
    inherit name; executable = true;
    text = "#!${shell}\n${text}";
    checkPhase = "${stdenv.shellDryRun} \"$target\"";
  };
  writeShellScriptBin = name: text: writeTextFile {
    inherit name; executable = true; destination = "/bin/${name}";
    text = "#!${shell}\n${text}";
    checkPhase = "${stdenv.shellDryRun} \"$target\"";
    meta.mainProgram = name;
  };

  writeShellApplication =
    { name, text, runtimeInputs ? [ ], runtimeEnv ? null, meta ? { }, checkPhase ? null
    , excludeShellChecks ? [ ], extraShellCheckFlags ? [ ], bashOptions ? [ "errexit" "nounset" "pipefail" ]
    , inheritPath ? true, derivationArgs ? { } }:
    writeTextFile {
      inherit name meta derivationArgs;
      executable = true;
      destination = "/bin/${name}";
      text = concatStringsSep "\n" (
        [ "#!${shell}" ]
        ++ map (o: "set -o ${o}") bashOptions
        ++ lib.optionals (runtimeEnv != null)
          (map (k: "export ${k}=${lib.escapeShellArg (toString runtimeEnv.${k})}") (attrNames runtimeEnv))
        ++ lib.optional (runtimeInputs != [ ])
          "export PATH=\"${lib.makeBinPath runtimeInputs}${lib.optionalString inheritPath ":$PATH"}\""
      ) + "\n\n" + text;
      checkPhase =
        if checkPhase != null then checkPhase
        else ''
          runHook preCheck
          ${stdenv.shellDryRun} "$target"
          ${shellcheck}/bin/shellcheck ${lib.escapeShellArgs (extraShellCheckFlags
            ++ lib.optionals (excludeShellChecks != [ ]) [ "--exclude" (concatStringsSep "," excludeShellChecks) ])} "$target"
          runHook postCheck
        '';
    } // { meta = { mainProgram = name; } // meta; };

  # Directories merged, files linked (first path wins), as nixpkgs' lndir-based symlinkJoin.
  symlinkJoin = args@{ name, paths, preferLocalBuild ? true, allowSubstitutes ? false, postBuild ? "", ... }:
    runCommand name (removeAttrs args [ "name" "postBuild" ] // {
      inherit preferLocalBuild allowSubstitutes postBuild;
      paths = map toString paths;
      passAsFile = [ "buildCommand" "paths" ];
    }) ''
      mkdir -p "$out"
      for p in $(cat "$pathsPath"); do
        [ -d "$p" ] || { [ -e "$p" ] && ln -s "$p" "$out/''${p##*/}"; continue; }
        (cd "$p" && find . -mindepth 1 \( -type d -printf 'd %P\n' \) -o -printf 'f %P\n') |
          while read -r kind rel; do
            if [ "$kind" = d ]; then
              [ -L "$out/$rel" ] || mkdir -p "$out/$rel"
            elif [ ! -e "$out/$rel" ] && [ ! -L "$out/$rel" ]; then
              ln -s "$p/$rel" "$out/$rel"
            fi
          done
      done
      eval "$postBuild"
    '';
in
{
  inherit stdenv stdenvNoCC runCommand runCommandWith writeTextFile writeText writeTextDir
    writeScript writeScriptBin writeShellScript writeShellScriptBin writeShellApplication symlinkJoin;
  runCommandLocal = runCommand;
  runCommandNoCC = runCommand;
  runCommandCC = name: env: runCommandWith { inherit name stdenv; derivationArgs = env; };
  mkShell = args: stdenvNoCC.mkDerivation ({ name = args.name or "shell"; buildCommand = "echo 'mkShell is for nix develop' > $out"; } // removeAttrs args [ "packages" "inputsFrom" ]);
  buildEnv = { name, paths, ... }@a: symlinkJoin { inherit name paths; postBuild = a.postBuild or ""; };
}
