#!/usr/bin/env bash
# check-stage.sh SCRIPT: build-time checks of one rendered repx stage script.
#
# Runs inside the Nix build sandbox, where only a static bash, busybox applets,
# jq and shellcheck exist; so: bash builtins, busybox awk, no temporary files.
#
# Environment:
#   REPX_STAGE                stage name (for messages)
#   REPX_STAGE_FILE           stage file, relative, e.g. stages/simulate.nix
#   REPX_PREAMBLE_LINES       number of generated lines before the user's body
#   REPX_BODY_LINE            line of REPX_STAGE_FILE where the body starts (0 = unknown)
#   REPX_BODY_INDENT          optional: columns of indentation Nix stripped from
#                             the body (added to reported columns); default 0
#   REPX_BODY_LINES           optional: number of body lines (default: all the
#                             rest of SCRIPT; lines after it are generated)
#   REPX_DEP_PATH             colon-separated bin dirs the job will have on PATH
#   REPX_SHELLCHECK           shellcheck executable (default: shellcheck on PATH)
#   REPX_SHELLCHECK_SEVERITY  error | warning | info | style (default: info)
#   REPX_ALLOWED_COMMANDS     space-separated command names to accept anyway
#
# Exit status: 0 all checks pass (nothing printed), 1 the stage has problems
# (one line each on stderr), 2 the checker itself was misused or failed.
set -euo pipefail

die() {
    printf 'repx: check-stage: %s\n' "$1" >&2
    exit 2
}

nonneg() {
    [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"
}

(($# == 1)) || die "usage: bash check-stage.sh SCRIPT"
script=$1
[[ -f $script && -r $script ]] || die "cannot read stage script '$script'"

stage=${REPX_STAGE:-?}
stage_file=${REPX_STAGE_FILE:-}
preamble=${REPX_PREAMBLE_LINES:-0}
body_line=${REPX_BODY_LINE:-0}
indent=${REPX_BODY_INDENT:-0}
body_count=${REPX_BODY_LINES:-}
shellcheck=${REPX_SHELLCHECK:-shellcheck}
severity=${REPX_SHELLCHECK_SEVERITY:-info}
nonneg REPX_PREAMBLE_LINES "$preamble"
nonneg REPX_BODY_LINE "$body_line"
nonneg REPX_BODY_INDENT "$indent"
[[ -z $body_count ]] || nonneg REPX_BODY_LINES "$body_count"
case $severity in
    error | warning | info | style) ;;
    *) die "REPX_SHELLCHECK_SEVERITY must be error, warning, info or style, got '$severity'" ;;
esac

# The awk tokenizer lives next to this file: reference the whole directory
# from Nix ("${./check}/check-stage.sh"), not this file alone.
here=${BASH_SOURCE[0]%/*}
[[ $here != "${BASH_SOURCE[0]}" ]] || here=.
commands_awk=$here/commands.awk
[[ -r $commands_awk ]] || die "missing $commands_awk (copy the whole check/ directory)"

mapfile -t lines <"$script"
total=${#lines[@]}
((preamble <= total)) || die "REPX_PREAMBLE_LINES=$preamble but '$script' has only $total lines"
# Last body line (1-based).  Without REPX_BODY_LINES the body runs to the end,
# including the line past it where ShellCheck reports unexpected end of file.
body_end=$total
last_body_line=-1
if [[ -n $body_count ]]; then
    last_body_line=$((preamble + body_count))
    ((last_body_line >= total)) || body_end=$last_body_line
fi

# Where script line $1 (column $2) comes from, for messages; sets `where`.
locate() {
    local line=$1 col=$2 file=${stage_file:-stage script}
    if ((line <= preamble)); then
        where="$file, generated preamble line $line"
    elif ((last_body_line >= 0 && line > last_body_line)); then
        where="$file, generated epilogue line $line"
    elif ((body_line > 0)); then
        where="$file:$((line - preamble + body_line - 1)):$((col + indent))"
    else
        where="$file, script line $line"
    fi
}

# --- Step 1: ShellCheck --------------------------------------------------
# json1 rather than gcc: gcc reports both info and style as "note", and json1
# counts a tab as one column, like the source file does.  --norc keeps a
# .shellcheckrc from the build directory or $HOME out of the verdict.
sc_status=0
sc_json=$("$shellcheck" --norc -s bash -f json1 -S "$severity" -- "$script") || sc_status=$?
case $sc_status in
    0) ;;
    1)
        rows=$(jq -r '.comments | sort_by(.line, .column) | .[]
                      | [.line, .column, .level, .code, .message] | @tsv' <<<"$sc_json") ||
            die "cannot read shellcheck's json1 output for '$script'"
        findings=0
        while IFS=$'\t' read -r line col level code message; do
            locate "$line" "$col"
            printf "repx: stage '%s' (%s): ShellCheck SC%s (%s): %s\n" \
                "$stage" "$where" "$code" "$level" "$message" >&2
            findings=$((findings + 1))
        done <<<"$rows"
        printf "repx: stage '%s': %d ShellCheck finding(s) at severity '%s' or above; fix them, or silence a deliberate one with a '# shellcheck disable=SCnnnn' comment on the line before it\n" \
            "$stage" "$findings" "$severity" >&2
        exit 1
        ;;
    *) die "shellcheck ($shellcheck) failed with status $sc_status on '$script'" ;;
esac

# --- Step 2: commands the body runs must come from REPX_DEP_PATH ----------
# bash parses the text and prints it back without running any of it
# (--pretty-print), which drops comments, joins continuations and lays out
# compound commands; commands.awk then only has to follow quoting and command
# position.  BASH_ENV is cleared because bash would source it even here;
# extglob is on because a body may enable it before using @(...) patterns.
normalize() {
    BASH_ENV='' "$BASH" --pretty-print -O extglob 2>/dev/null <<<"$1"
}
preamble_text=''
((preamble == 0)) || printf -v preamble_text '%s\n' "${lines[@]:0:preamble}"
body_text=''
((body_end == preamble)) || printf -v body_text '%s\n' "${lines[@]:preamble:body_end-preamble}"

# Functions of the generated preamble are local commands for the body.  A
# preamble bash cannot parse on its own only costs those names.
preamble_norm=$(normalize "$preamble_text") || preamble_norm=''
if ! body_norm=$(normalize "$body_text"); then
    normalize '' >/dev/null || die "$BASH does not support --pretty-print (bash >= 5.2 is needed)"
    # Rare: ShellCheck accepted what bash rejects.  Report bash's first line.
    reason=$(BASH_ENV='' "$BASH" --pretty-print -O extglob 2>&1 >/dev/null <<<"$body_text") || true
    reason=${reason%%$'\n'*}
    if [[ $reason =~ line\ ([0-9]+):\ (.*)$ ]]; then
        locate "$((preamble + BASH_REMATCH[1]))" 1
        reason=${BASH_REMATCH[2]}
    else
        where=${stage_file:-stage script}
    fi
    printf "repx: stage '%s' (%s): bash cannot parse the script body: %s\n" \
        "$stage" "$where" "${reason:-unknown error}" >&2
    exit 1
fi

commands=$(REPX_PRE_NORM=$preamble_norm REPX_BODY_NORM=$body_norm \
    REPX_ALLOWED_COMMANDS=${REPX_ALLOWED_COMMANDS:-} awk -f "$commands_awk") ||
    die "command analysis (awk -f $commands_awk) failed"

# An explicit directory scan rather than `type -P`: bash's command hash could
# answer from this checker's own PATH, and empty entries must not mean ".".
IFS=: read -r -a dep_dirs <<<"${REPX_DEP_PATH:-}"
missing=0
while IFS= read -r name; do
    [[ -n $name ]] || continue
    found=0
    for dir in "${dep_dirs[@]}"; do
        if [[ -n $dir && -f $dir/$name && -x $dir/$name ]]; then
            found=1
            break
        fi
    done
    ((found)) && continue
    # Package attribute to suggest: the usual nixpkgs home of common commands.
    case $name in
        python | python3 | pip | pip3) package=python3 ;;
        R | Rscript) package=R ;;
        awk | gawk) package=gawk ;;
        sed) package=gnused ;;
        grep | egrep | fgrep) package=gnugrep ;;
        find | xargs) package=findutils ;;
        make) package=gnumake ;;
        tar) package=gnutar ;;
        node) package=nodejs ;;
        sqlite3) package=sqlite ;;
        dot | neato) package=graphviz ;;
        convert | magick) package=imagemagick ;;
        ssh | scp) package=openssh ;;
        mpirun | mpiexec) package=openmpi ;;
        ps | free | top | pgrep | pkill) package=procps ;;
        bc | dc) package='bc' ;;
        xz | unxz | xzcat) package=xz ;;
        zstd | unzstd | zstdcat) package=zstd ;;
        gzip | gunzip | zcat) package=gzip ;;
        bzip2 | bunzip2 | bzcat) package=bzip2 ;;
        time) package='time' ;;
        ls | cat | cp | mv | rm | mkdir | rmdir | ln | chmod | touch | head | tail | wc | sort | \
            uniq | cut | tr | tee | date | basename | dirname | mktemp | seq | sleep | env | \
            nice | nohup | timeout | stat | du | df | sha256sum | md5sum | realpath | readlink | \
            printenv | id | uname | paste | join | split | comm | nproc | yes | stdbuf | install | \
            shuf | tac | numfmt | expr | od | fold | fmt | nl | tsort | sum | cksum | base64) package=coreutils ;;
        *) package=$name ;;
    esac
    printf "repx: stage '%s' (%s): command '%s' is not provided by runDependencies; add the package that provides it (e.g. pkgs.%s) to runDependencies\n" \
        "$stage" "${stage_file:-stage script}" "$name" "$package" >&2
    missing=1
done <<<"$commands"
exit "$missing"
