# shellcheck shell=bash disable=SC2154,SC2086
# The builder of the offline toolchain's stdenv.mkDerivation (docs/offline.md, "Builders"):
# nixpkgs' generic phases, kept small. Run as `bash -e stdenv-setup.sh` by every derivation
# of builders.nix; the variables come from the derivation's environment.
set -eo pipefail

# PATH: the packages' bin/ directories, then the stdenv's own tools (GNU, bash, make, cc).
path=
for p in $nativeBuildInputs $buildInputs $stdenvInitialPath; do
  if [ -d "$p/bin" ]; then path=$path${path:+:}$p/bin; fi
done
export PATH=$path
export SHELL=$stdenvShell CONFIG_SHELL=$stdenvShell
export HOME=/homeless-shelter TMPDIR=${TMPDIR:-/build} SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
export NIX_BUILD_CORES=${NIX_BUILD_CORES:-1}
[ "$NIX_BUILD_CORES" -gt 0 ] 2>/dev/null || NIX_BUILD_CORES=$(nproc)

# Headers and libraries of the inputs, read by the cc wrapper (as nixpkgs' cc-wrapper does).
for p in $buildInputs $nativeBuildInputs; do
  if [ -d "$p/include" ]; then NIX_CFLAGS_COMPILE="${NIX_CFLAGS_COMPILE-} -isystem $p/include"; fi
  if [ -d "$p/lib" ]; then NIX_LDFLAGS="${NIX_LDFLAGS-} -L$p/lib -Wl,-rpath,$p/lib"; fi
  CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH-}${CMAKE_PREFIX_PATH:+:}$p
  if [ -d "$p/lib/pkgconfig" ]; then PKG_CONFIG_PATH=${PKG_CONFIG_PATH-}${PKG_CONFIG_PATH:+:}$p/lib/pkgconfig; fi
done
export NIX_CFLAGS_COMPILE NIX_LDFLAGS CMAKE_PREFIX_PATH PKG_CONFIG_PATH
if command -v cc >/dev/null; then export CC=cc CXX=c++; fi

runHook() {
  local hook=$1
  if [ -n "${!hook-}" ]; then eval "${!hook}"; fi
}

# Variables nixpkgs passes as lists: derivation lists arrive space-separated.
read -r -a makeFlagsArray <<<"${makeFlags-}"

unpackPhase() {
  runHook preUnpack
  if [ -z "${src-}" ]; then echo "stdenv: no 'src' (set src, or dontUnpack = true)" >&2; exit 1; fi
  local base=${src##*/}
  base=${base#????????????????????????????????-}  # the store hash, as nixpkgs' stripHash
  if [ -d "$src" ]; then
    cp -r --no-preserve=mode "$src" "$base"
    sourceRoot=${sourceRoot:-$base}
  else
    mkdir unpack-tmp
    # Decompressed here, not by `tar -z`: GNU tar runs its compressor through /bin/sh, and
    # the sandbox has none.
    case $src in
      *.tar.gz | *.tgz) gzip -dc "$src" | tar -x -C unpack-tmp ;;
      *.tar.xz | *.txz) xz -dc "$src" | tar -x -C unpack-tmp ;;
      *.tar.bz2 | *.tbz2) bzip2 -dc "$src" | tar -x -C unpack-tmp ;;
      *.zip) echo "stdenv: .zip sources are not supported offline" >&2; exit 1 ;;
      *) tar -xf "$src" -C unpack-tmp ;;
    esac
    chmod -R u+w unpack-tmp # archives of store paths hold read-only directories
    if [ -z "${sourceRoot-}" ]; then
      set -- unpack-tmp/*
      if [ $# -eq 1 ] && [ -d "$1" ]; then mv "$1" .; sourceRoot=${1#unpack-tmp/}; else mv unpack-tmp source; sourceRoot=source; fi
    else
      mv unpack-tmp/* .
    fi
  fi
  chmod -R u+w "$sourceRoot"
  cd "$sourceRoot"
  runHook postUnpack
}

patchPhase() {
  runHook prePatch
  for p in ${patches-}; do patch -p1 <"$p"; done
  runHook postPatch
}

useCmake() { [ -z "${dontUseCmakeConfigure-}" ] && [ -f CMakeLists.txt ] && command -v cmake >/dev/null; }

configurePhase() {
  runHook preConfigure
  if useCmake; then
    mkdir -p build
    cd build
    cmake .. -DCMAKE_INSTALL_PREFIX="$out" -DCMAKE_BUILD_TYPE=Release -DCMAKE_SKIP_BUILD_RPATH=ON ${cmakeFlags-}
    enableParallelBuilding=${enableParallelBuilding-1}
  elif [ -x "${configureScript:-./configure}" ]; then
    $SHELL "${configureScript:-./configure}" --prefix="$out" ${configureFlags-}
  fi
  runHook postConfigure
}

haveMakefile() { [ -f Makefile ] || [ -f makefile ] || [ -f GNUmakefile ]; }

jobs() { if [ -n "${enableParallelBuilding-}" ]; then echo "-j$NIX_BUILD_CORES"; else echo "-j1"; fi; }

buildPhase() {
  runHook preBuild
  if haveMakefile; then
    make "$(jobs)" SHELL="$SHELL" "${makeFlagsArray[@]}" ${buildFlags-}
  else
    echo "stdenv: no Makefile, nothing to build (set buildPhase)"
  fi
  runHook postBuild
}

checkPhase() {
  runHook preCheck
  if haveMakefile; then make "$(jobs)" SHELL="$SHELL" "${makeFlagsArray[@]}" ${checkTarget:-check}; fi
  runHook postCheck
}

installPhase() {
  runHook preInstall
  if haveMakefile; then make SHELL="$SHELL" "${makeFlagsArray[@]}" ${installFlags-} ${installTargets:-install}; fi
  runHook postInstall
}

# Scripts installed with `#!/bin/sh`, `#!/usr/bin/env python3` … get the interpreter found on
# PATH (the sandbox and bwrap runs have no /bin, /usr).
patchShebangs() {
  local f first interp rest found
  find "$@" -type f -perm -0100 2>/dev/null | while read -r f; do
    IFS= read -r first <"$f" || true
    case $first in '#!'*) ;; *) continue ;; esac
    read -r interp rest <<<"${first#\#!}"
    if [ "${interp##*/}" = env ] && [ -n "$rest" ]; then read -r interp rest <<<"$rest"; fi
    case $interp in /nix/store/*) continue ;; esac
    found=$(command -v "${interp##*/}" || true)
    [ -n "$found" ] || continue
    sed -i "1s|.*|#!$found${rest:+ $rest}|" "$f"
  done
}

fixupPhase() {
  runHook preFixup
  if [ -z "${dontPatchShebangs-}" ] && [ -d "$out" ]; then patchShebangs "$out"; fi
  runHook postFixup
}

installCheckPhase() { runHook preInstallCheck; runHook postInstallCheck; }
distPhase() { :; }

runPhase() {
  local phase=$1 skip
  case $phase in
    unpackPhase) skip=${dontUnpack-} ;; patchPhase) skip= ;; configurePhase) skip=${dontConfigure-} ;;
    buildPhase) skip=${dontBuild-} ;; checkPhase) skip=$([ -n "${doCheck-}" ] || echo 1) ;;
    installPhase) skip=${dontInstall-} ;; fixupPhase) skip=${dontFixup-} ;;
    installCheckPhase) skip=$([ -n "${doInstallCheck-}" ] || echo 1) ;; distPhase) skip=$([ -n "${doDist-}" ] || echo 1) ;;
    *) skip= ;;
  esac
  [ -z "$skip" ] || return 0
  echo "stdenv: $phase"
  if [ -n "${phaseOverride[$phase]-}" ]; then
    eval "${phaseOverride[$phase]}"
  else
    "$phase"
  fi
}

cd "${NIX_BUILD_TOP:-/build}"
if [ -n "${buildCommandPath-}" ]; then
  # runCommand & co: the command is the whole build.
  eval "$(cat "$buildCommandPath")"
elif [ -n "${buildCommand-}" ]; then
  eval "$buildCommand"
else
  # A phase given as an attribute (`installPhase = "...";`) replaces the default function of
  # the same name; bash variables and functions share names, so keep the string aside first.
  declare -A phaseOverride=()
  for ph in unpackPhase patchPhase configurePhase buildPhase checkPhase installPhase fixupPhase installCheckPhase distPhase; do
    if [ -n "${!ph-}" ]; then phaseOverride[$ph]=${!ph}; fi
  done
  for ph in ${phases:-${prePhases-} unpackPhase patchPhase ${preConfigurePhases-} configurePhase ${preBuildPhases-} buildPhase checkPhase ${preInstallPhases-} installPhase ${preFixupPhases-} fixupPhase installCheckPhase ${preDistPhases-} distPhase ${postPhases-}}; do
    runPhase "$ph"
  done
fi
if [ ! -e "$out" ]; then echo "stdenv: the build did not create \$out ($out)" >&2; exit 1; fi
