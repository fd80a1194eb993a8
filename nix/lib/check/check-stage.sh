#!/usr/bin/env bash
# check-stage.sh SCRIPT: build-time checks of one rendered repx stage script.
#
# Runs inside the Nix build sandbox, where only a static bash, jq, shfmt
# and ShellCheck exist; so: bash builtins, no temporary files.
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
#   REPX_SHFMT                shfmt executable, >= 3.6 (default: shfmt on PATH)
#   REPX_SHELLCHECK_SEVERITY  error | warning | info | style (default: info)
#   REPX_ALLOWED_COMMANDS     space-separated command names (or absolute program
#                             paths) to accept anyway
#   REPX_PACKAGE_NAMES_FILE   optional: file with the attribute names of the
#                             package set (`pkgs`), one per line; package hints
#                             then name only packages that exist there
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
shfmt=${REPX_SHFMT:-shfmt}
severity=${REPX_SHELLCHECK_SEVERITY:-info}
nonneg REPX_PREAMBLE_LINES "$preamble"
nonneg REPX_BODY_LINE "$body_line"
nonneg REPX_BODY_INDENT "$indent"
[[ -z $body_count ]] || nonneg REPX_BODY_LINES "$body_count"
case $severity in
    error | warning | info | style) ;;
    *) die "REPX_SHELLCHECK_SEVERITY must be error, warning, info or style, got '$severity'" ;;
esac

# The jq program lives next to this file: reference the whole directory
# from Nix ("${./check}/check-stage.sh"), not this file alone.
here=${BASH_SOURCE[0]%/*}
[[ $here != "${BASH_SOURCE[0]}" ]] || here=.
commands_jq=$here/commands.jq
[[ -r $commands_jq ]] || die "missing $commands_jq (copy the whole check/ directory)"

mapfile -t lines <"$script"
total=${#lines[@]}
((preamble <= total)) || die "REPX_PREAMBLE_LINES=$preamble but '$script' has only $total lines"
# Last body line (1-based).  Without REPX_BODY_LINES the body runs to the end,
# including the line past it where ShellCheck reports unexpected end of file.
last_body_line=-1
[[ -z $body_count ]] || last_body_line=$((preamble + body_count))

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

# Problems are collected and printed at the end: the dependency analysis first
# (a typo in a command name is the likelier cause of odd ShellCheck findings),
# then ShellCheck's findings and the hint that goes with them.
dep_problems=()
warnings=()
parse_problem=''
sc_problems=()
sc_parse_error=0

# The package set's names, newline-framed for a whole-line match (read once).
package_names=''
if [[ -n ${REPX_PACKAGE_NAMES_FILE:-} ]]; then
    [[ -r $REPX_PACKAGE_NAMES_FILE ]] || die "cannot read REPX_PACKAGE_NAMES_FILE '$REPX_PACKAGE_NAMES_FILE'"
    package_names=$'\n'$(<"$REPX_PACKAGE_NAMES_FILE")$'\n'
fi

# Package attribute to suggest for command $1 (sets `package`, empty when the
# package set is known and has no such package): the usual nixpkgs home of
# common commands, else the command's own name.
suggest() {
    suggest_name "$1"
    [[ -z ${REPX_PACKAGE_NAMES_FILE:-} || $package_names == *$'\n'"$package"$'\n'* ]] || package=''
}

# (e.g. pkgs.NAME) for the advice texts, or nothing without a package (sets `eg`).
example() {
    eg=''
    [[ -z $package ]] || eg=" (e.g. pkgs.$package)"
}

suggest_name() {
    case $1 in
        python | python3 | pip | pip3) package=python3 ;;
        R | Rscript) package=R ;;
        awk | gawk) package=gawk ;;
        sed) package=gnused ;;
        grep | egrep | fgrep) package=gnugrep ;;
        find | xargs) package=findutils ;;
        make) package=gnumake ;;
        tar) package=gnutar ;;
        sh | bash) package=bash ;;
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
        *) package=$1 ;;
    esac
}

# The command closest to $1 (a typo: one edit for names of up to 4 characters, two for
# longer ones) among the programs of REPX_DEP_PATH; sets `nearest` (empty: none).
closest() {
    local name=$1 dir file cand best d
    best=$((${#name} <= 4 ? 2 : 3))
    local -a cands=()
    nearest=''
    for dir in "${dep_dirs[@]}"; do
        [[ -n $dir && -d $dir ]] || continue
        for file in "$dir"/*; do
            [[ -f $file && -x $file ]] && cands+=("${file##*/}")
        done
    done
    for cand in "${cands[@]}"; do
        d=$((${#cand} - ${#name}))
        ((d <= 2 && d >= -2)) || continue
        distance "$name" "$cand"
        if ((dist < best)); then
            best=$dist
            nearest=$cand
        fi
    done
}

# Levenshtein distance of $1 and $2 (sets `dist`).
distance() {
    local a=$1 b=$2 i j cost v
    local -a prev cur
    for ((j = 0; j <= ${#b}; j++)); do prev[j]=$j; done
    for ((i = 1; i <= ${#a}; i++)); do
        cur=("$i")
        for ((j = 1; j <= ${#b}; j++)); do
            cost=1
            [[ ${a:i-1:1} != "${b:j-1:1}" ]] || cost=0
            v=$((prev[j] + 1))
            ((cur[j - 1] + 1 >= v)) || v=$((cur[j - 1] + 1))
            ((prev[j - 1] + cost >= v)) || v=$((prev[j - 1] + cost))
            cur[j]=$v
        done
        prev=("${cur[@]}")
    done
    dist=${prev[${#b}]}
}

# An explicit directory scan rather than `type -P`: bash's command hash could
# answer from this checker's own PATH, and empty entries must not mean ".".
IFS=: read -r -a dep_dirs <<<"${REPX_DEP_PATH:-}"
provided() {
    local dir
    for dir in "${dep_dirs[@]}"; do
        [[ -n $dir && -f $dir/$1 && -x $dir/$1 ]] && return 0
    done
    return 1
}

# --- Step 1: the programs the body runs must come from REPX_DEP_PATH ------
# shfmt parses the whole script (the preamble's functions are local commands
# for the body) and prints its syntax tree; commands.jq lists the command
# names, absolute program paths and sourced files of the body's lines.
# `-ln bash` rather than auto: the script has a bash shebang, but a checked
# body alone (tests, other callers) may not.
command -v "$shfmt" >/dev/null || die "shfmt ($shfmt) not found"
first_body_line=$((preamble + 1))
if ast=$("$shfmt" -ln bash --to-json <"$script" 2>/dev/null); then
    rows=$(jq -r --argjson first "$first_body_line" --argjson last "$last_body_line" \
        --arg allowed "${REPX_ALLOWED_COMMANDS:-}" -f "$commands_jq" <<<"$ast") ||
        die "command analysis (jq -f $commands_jq) failed on '$script'"
    while IFS=$'\t' read -r kind line col text; do
        [[ -n $kind ]] || continue
        locate "$line" "$col"
        case $kind in
            cmd)
                provided "$text" && continue
                nearest=''
                # a name no package is known by may be a typo of a command the job has
                suggest_name "$text"
                if [[ $package == "$text" && $package_names != *$'\n'"$text"$'\n'* ]]; then
                    closest "$text"
                fi
                if [[ -n $nearest ]]; then
                    # a typo of a command the job has (`jqq` for jq) is likelier than a package
                    printf -v problem "repx: stage '%s' (%s): command '%s' is not found in the stage's packages (runDependencies); did you mean '%s'? (if not, add the package that provides it to runDependencies)" \
                        "$stage" "$where" "$text" "$nearest"
                    dep_problems+=("$problem")
                    continue
                fi
                suggest "$text"
                example
                printf -v problem "repx: stage '%s' (%s): command '%s' is not provided by runDependencies; add the package that provides it%s to runDependencies" \
                    "$stage" "$where" "$text" "$eg"
                ;;
            quoted)
                # a warning: the build goes on (repx build shows it from the lab)
                nix_name=${text%%\[*}
                nix_name=${nix_name,,}
                [[ $nix_name == params ]] && nix_name=parameters
                key=${text#*\[}
                key=${key%]}
                printf -v problem "repx: warning: stage '%s' (%s): \${%s.%s} is inside single quotes, where bash does not expand it: the job gets the literal text \${%s}; close the quotes around it ('...'\"\${%s.%s}\"'...') or use double quotes" \
                    "$stage" "$where" "$nix_name" "$key" "$text" "$nix_name" "$key"
                warnings+=("$problem")
                continue
                ;;
            path)
                name=${text##*/}
                if [[ $name == *... || -z $name ]]; then
                    advice="add the package that provides it to runDependencies and call the program by name"
                elif provided "$name"; then
                    advice="runDependencies provides '$name': call it by name"
                else
                    suggest "$name"
                    example
                    advice="add the package that provides it$eg to runDependencies and call it by name ('$name')"
                fi
                printf -v problem "repx: stage '%s' (%s): '%s' is a program outside the Nix store, which the job cannot rely on; %s" \
                    "$stage" "$where" "$text" "$advice"
                ;;
            source)
                printf -v problem "repx: stage '%s' (%s): '%s' is sourced from outside the Nix store, which the job cannot rely on; put the file into the experiment and source it from the store (\"\${./file.sh}\")" \
                    "$stage" "$where" "$text"
                ;;
            *) die "command analysis printed an unknown row kind '$kind'" ;;
        esac
        dep_problems+=("$problem")
    done <<<"$rows"
else
    # Reported only when ShellCheck, whose parse errors say more, accepts the script.
    reason=$("$shfmt" -ln bash --to-json <"$script" 2>&1 >/dev/null) || true
    reason=${reason%%$'\n'*}
    [[ -n $reason ]] || die "shfmt ($shfmt) failed on '$script' without a message"
    if [[ $reason =~ ^([0-9]+):([0-9]+):\ (.*)$ ]]; then
        locate "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        reason=${BASH_REMATCH[3]}
    else
        where=${stage_file:-stage script}
    fi
    printf -v parse_problem "repx: stage '%s' (%s): the dependency analysis cannot parse the script (shfmt: %s); write that construct another way (bash may accept it, but its commands cannot be checked)" \
        "$stage" "$where" "$reason"
fi

# --- Step 2: ShellCheck --------------------------------------------------
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
        while IFS=$'\t' read -r line col level code message; do
            locate "$line" "$col"
            printf -v problem "repx: stage '%s' (%s): ShellCheck SC%s (%s): %s" \
                "$stage" "$where" "$code" "$level" "$message"
            sc_problems+=("$problem")
            [[ $code != 1??? ]] || sc_parse_error=1
        done <<<"$rows"
        ;;
    *) die "shellcheck ($shellcheck) failed with status $sc_status on '$script'" ;;
esac

# --- Report ----------------------------------------------------------------
# Warnings go to stdout (the check's output, which the lab keeps for repx build to show),
# and with the problems to stderr when the stage fails.
((${#warnings[@]} == 0)) || printf '%s\n' "${warnings[@]}"
((sc_parse_error)) || [[ -z $parse_problem ]] || dep_problems+=("$parse_problem")
((${#dep_problems[@]} + ${#sc_problems[@]})) || exit 0
((${#warnings[@]} == 0)) || printf '%s\n' "${warnings[@]}" >&2
((${#dep_problems[@]} == 0)) || printf '%s\n' "${dep_problems[@]}" >&2
if ((${#sc_problems[@]})); then
    printf '%s\n' "${sc_problems[@]}" >&2
    printf "repx: stage '%s': %d ShellCheck finding(s) at severity '%s' or above; fix them, or silence a deliberate one with a '# shellcheck disable=SCnnnn' comment on the line before it\n" \
        "$stage" "${#sc_problems[@]}" "$severity" >&2
fi
exit 1
