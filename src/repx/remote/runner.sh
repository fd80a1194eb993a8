# repx remote runner: runs a submitted plan on an SSH target that has neither repx nor Nix.
#
# It is started by the lab's own host-tools bash (`<tools>/bash runner.sh COMMAND …`), and
# calls only bash builtins and the lab's host-tools (busybox, bwrap): nothing of the remote
# host but /bin/sh (the shebang of the host-tools wrappers) and the kernel.
#
# repx (on the user's machine) decides everything that needs the lab's semantics and writes
# it into the submission directory SUB (docs/remote.md, "The remote runner"):
#   SUB/settings         NUL-separated: base, lab id, tools dir, max jobs, continue (0/1)
#   SUB/nodes.tsv        one node per line in topological order:
#                        index, kind (J job | B run barrier), id, predecessors
#                        ("3h 5s": node 3 must succeed, node 5 must finish), parameters file
#   SUB/jobs/<id>/argv   the job's full argv (bwrap …), NUL-separated; @@WORK@@ stands for
#                        its attempt directory
#   SUB/jobs/<id>/inputs.json, gather-*.json, outputs (declared outputs, NUL-separated)
# This script only executes that plan with the output store's protocol (docs/running.md):
# an attempt in .work/<id>.<nonce>/{out,repx}, logs, result.json, a SUCCESS or FAIL marker,
# one rename to outputs/<id>, one line appended to completions.jsonl. Per-job locks are
# directories locks/<id>.rlock (mkdir is atomic) holding the runner's pid and host.
#
# Commands: start SUB | run SUB | snapshot BASE | log BASE JOB FILE LINES FOLLOW | cancel SUB
set -u
shopt -s nullglob
# a decimal point in $EPOCHREALTIME and numbers, whatever locale ssh passed on
export LC_ALL=C
# the runner's own tools: the host-tools directory its bash was started from
PATH="${BASH%/*}:$PATH"

PLACEHOLDER='@@WORK@@'

json_string() { # $1 -> a JSON string literal on stdout
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

host_name() {
  local h
  read -r h </proc/sys/kernel/hostname 2>/dev/null || h=unknown
  printf '%s' "$h"
}

nonce() { printf '%04x%04x%04x' $RANDOM $RANDOM $RANDOM; }

# -- locks -----------------------------------------------------------------------------

lock_held() { # $1 lock dir: true while a live process on this host holds it
  local owner pid host
  [[ -d $1 ]] || return 1
  read -r owner <"$1/owner" 2>/dev/null || return 0 # being created: held
  pid=${owner%% *}
  host=${owner#* }
  [[ $host != "$HOST" ]] && return 0 # another host: assume held
  kill -0 "$pid" 2>/dev/null
}

take_lock() { # $1 job: 0 when taken (a stale lock of a dead runner is removed first)
  local dir="$BASE/locks/$1.rlock"
  if mkdir "$dir" 2>/dev/null; then
    printf '%s %s\n' "$$" "$HOST" >"$dir/owner"
    return 0
  fi
  lock_held "$dir" && return 1
  rm -rf "$dir"
  mkdir "$dir" 2>/dev/null || return 1
  printf '%s %s\n' "$$" "$HOST" >"$dir/owner"
}

drop_lock() { rm -rf "$BASE/locks/$1.rlock"; }

# -- one job ---------------------------------------------------------------------------

declare -A WORK START NONCE PID_OF

write_inputs() { # $1 job, $2 directory the gather lists are in
  local text
  text=$(<"$SUB/jobs/$1/inputs.json")
  printf '%s\n' "${text//"$PLACEHOLDER"/$2}" >"$WORK_DIR/repx/inputs.json"
}

launch() { # $1 node index: prepare the attempt and start the job in the background
  local i=$1 job=${ID[$1]} rel n w out args=() arg
  if [[ -d $BASE/outputs/$job/out && -e $BASE/outputs/$job/repx/SUCCESS ]]; then
    STATE[i]=S # committed meanwhile (another runner)
    return 0
  fi
  if ! take_lock "$job"; then
    STATE[i]=W # held by another runner: look again later
    return 0
  fi
  n=$(nonce)
  w="$BASE/.work/$job.$n"
  rm -rf "$BASE/.work/$job".*
  mkdir -p "$w/out" "$w/repx" || { fail_start "$i" "cannot create $w"; return 0; }
  WORK_DIR=$w
  out="$w/out"
  if [[ -s $SUB/jobs/$job/outputs ]]; then
    while IFS= read -r -d '' rel; do
      [[ $rel == */* ]] && mkdir -p "$out/${rel%/*}"
    done <"$SUB/jobs/$job/outputs"
  fi
  cp "$LAB/${PARAMS[$i]}" "$w/repx/parameters.json" || { fail_start "$i" "cannot copy parameters"; return 0; }
  for g in "$SUB/jobs/$job"/gather-*.json; do cp "$g" "$w/repx/"; done
  write_inputs "$job" "$w"
  while IFS= read -r -d '' arg; do args+=("${arg//"$PLACEHOLDER"/$w}"); done <"$SUB/jobs/$job/argv"
  WORK[$job]=$w
  NONCE[$job]=$n
  START[$job]=$EPOCHREALTIME
  (
    cd "$out" || exit 126
    # its own process group (setsid execs: same pid), so that a stop reaches all of it
    exec setsid env -i "PATH=$JOB_PATH" HOME=/homeless-shelter TMPDIR=/tmp LANG=C.UTF-8 \
      "REPX_JOB_ID=$job" "${args[@]}" </dev/null >"$w/repx/stdout.log" 2>"$w/repx/stderr.log"
  ) &
  PID_OF[$!]=$i
  STATE[i]=R
  RUNNING=$((RUNNING + 1))
}

fail_start() { # $1 node, $2 why: the job could not be started
  local job=${ID[$1]}
  printf 'repx remote: %s: %s\n' "$job" "$2" >&2
  printf 'finished\t%s\terror\t\t0\t%s\n' "$job" "$2"
  drop_lock "$job"
  STATE[$1]=F
  FAILED=$((FAILED + 1))
}

finish() { # $1 node index, $2 exit status, $3 interrupted (0/1): commit the attempt
  local i=$1 code=$2 job=${ID[$1]} w status reason why="" rel missing="" final end record marker us
  w=${WORK[$job]}
  end=$EPOCHREALTIME
  final="$BASE/outputs/$job"
  status=succeeded
  reason=null
  if [[ $3 == 1 && $code != 0 ]]; then
    status=interrupted
    why=interrupted
  elif ((code > 128)); then
    status=failed
    why="killed by signal $((code - 128))"
    code=$((128 - code)) # as the output store records it: minus the signal
  elif [[ $code != 0 ]]; then
    status=failed
    why="exit status $code"
  else
    if [[ -s $SUB/jobs/$job/outputs ]]; then
      while IFS= read -r -d '' rel; do
        [[ -e $w/out/$rel ]] || missing+="${missing:+, }$rel"
      done <"$SUB/jobs/$job/outputs"
    fi
    if [[ -n $missing ]]; then
      status=failed
      why="declared output(s) missing: $missing"
    fi
  fi
  [[ -n $why ]] && reason=$(json_string "$why")
  record="{\"job\":$(json_string "$job"),\"status\":\"$status\",\"exit_code\":$code"
  record+=",\"reason\":$reason,\"start\":${START[$job]},\"end\":$end"
  record+=",\"host\":$(json_string "$HOST"),\"runtime\":\"bwrap\""
  record+=",\"lab_id\":$(json_string "$LAB_ID"),\"attempt\":\"${NONCE[$job]}\""
  record+=",\"cpu_seconds\":null,\"max_rss_kib\":null,\"impure\":[]}"
  WORK_DIR=$w
  write_inputs "$job" "$final"
  if printf '%s\n' "$record" >"$w/repx/result.json"; then
    marker=FAIL
    [[ $status == succeeded ]] && marker=SUCCESS
    : >"$w/repx/$marker"
    [[ $status != succeeded && -d $w/out ]] && mv "$w/out" "$w/failed-out"
    if [[ -e $final ]]; then
      mv "$final" "$w.trash" && rm -rf "$w.trash"
    fi
    if mv "$w" "$final"; then
      printf '%s\n' "$record" >>"$BASE/completions.jsonl"
    else
      status=error
    fi
  else
    status=error # a full disk: the attempt stays in .work, nothing is visible
  fi
  drop_lock "$job"
  RUNNING=$((RUNNING - 1))
  if [[ $status == succeeded ]]; then
    STATE[i]=S
    DONE=$((DONE + 1))
  else
    STATE[i]=F
    FAILED=$((FAILED + 1))
  fi
  us=$((${end/./} - ${START[$job]/./}))
  printf 'finished\t%s\t%s\t%s\t%d.%06d\t%s\n' "$job" "$status" "$code" \
    $((us / 1000000)) $((us % 1000000)) "$why"
}

# -- the plan --------------------------------------------------------------------------

declare -a ID KIND PREDS PARAMS STATE

read_plan() {
  local settings=() idx kind id preds params
  mapfile -d '' -t settings <"$SUB/settings"
  BASE=${settings[0]}
  LAB=${settings[1]}
  LAB_ID=${settings[2]}
  JOB_PATH=${settings[3]}
  MAX_JOBS=${settings[4]}
  CONTINUE=${settings[5]}
  while IFS=$'\t' read -r idx kind id preds params; do
    ID[idx]=$id
    KIND[idx]=$kind
    PREDS[idx]=$preds
    PARAMS[idx]=$params
    STATE[idx]=P
  done <"$SUB/nodes.tsv"
}

# P pending, W waiting for another runner's lock, R running, S succeeded, F failed, B blocked
ready() { # $1 node: 0 ready, 1 not yet, 2 blocked
  local p idx kind
  for p in ${PREDS[$1]}; do
    [[ $p == - ]] && continue
    idx=${p%?}
    kind=${p: -1}
    case ${STATE[$idx]} in
      S) ;;
      F | B) [[ $kind == h ]] && return 2 ;;
      *) return 1 ;;
    esac
  done
  return 0
}

STOPPING=0
SUMMARY_WRITTEN=0
on_signal() { STOPPING=1; }

SIGNALLED=0
reap_ended() { # jobs whose process is gone, although `wait -n` named none
  local pid code reaped=0
  for pid in "${!PID_OF[@]}"; do
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid"
    code=$?
    i=${PID_OF[$pid]}
    unset "PID_OF[$pid]"
    finish "$i" "$code" "$STOPPING"
    reaped=1
  done
  ((reaped)) || sleep 0.1
}

stop_jobs() {
  local pid
  for pid in "${!PID_OF[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
}

run_plan() {
  local i progress code pid r
  RUNNING=0 DONE=0 FAILED=0 BLOCKED=0
  trap on_signal TERM INT HUP
  printf 'started\t%s\n' "$$"
  while :; do
    progress=1
    while ((progress)); do
      progress=0
      for i in "${!ID[@]}"; do
        [[ ${STATE[$i]} == P || ${STATE[$i]} == W ]] || continue
        ((STOPPING)) && break
        ((FAILED > 0 && CONTINUE == 0)) && break
        ready "$i"
        r=$?
        if ((r == 2)); then
          STATE[i]=B
          [[ ${KIND[$i]} == J ]] && BLOCKED=$((BLOCKED + 1)) && printf 'blocked\t%s\tan upstream job did not succeed\n' "${ID[$i]}"
          progress=1
        elif ((r == 0)); then
          if [[ ${KIND[$i]} == B ]]; then
            STATE[i]=S
            progress=1
          elif ((RUNNING < MAX_JOBS)); then
            launch "$i"
            [[ ${STATE[$i]} == W ]] || progress=1
          fi
        fi
      done
    done
    if ((RUNNING == 0)); then
      # nothing runs: done, unless a job waits for another runner's lock
      local waiting=0
      for i in "${!ID[@]}"; do [[ ${STATE[$i]} == W ]] && waiting=1 && STATE[i]=P; done
      ((waiting && !STOPPING)) || break
      sleep 1
      continue
    fi
    if ((STOPPING && !SIGNALLED)); then
      stop_jobs
      SIGNALLED=1
    fi
    pid=""
    wait -n -p pid
    code=$?
    if [[ -z ${pid:-} ]]; then
      # interrupted by a signal (stop the jobs), or bash reaped a job already: `wait PID`
      # gives the status it kept
      if ((STOPPING && !SIGNALLED)); then
        stop_jobs
        SIGNALLED=1
      fi
      reap_ended
      continue
    fi
    i=${PID_OF[$pid]}
    unset "PID_OF[$pid]"
    finish "$i" "$code" "$STOPPING"
  done
  local pending=0
  for i in "${!ID[@]}"; do
    [[ ${KIND[$i]} == J && ${STATE[$i]} == P ]] && pending=$((pending + 1))
  done
  printf 'summary\t%s\t%s\t%s\t%s\t%s\n' "$DONE" "$FAILED" "$BLOCKED" "$pending" "$STOPPING"
  SUMMARY_WRITTEN=1
}

# -- commands --------------------------------------------------------------------------

HOST=$(host_name)
command=${1:-}
case $command in
  start)
    SUB=$2
    setsid "$BASH" "${BASH_SOURCE[0]}" run "$SUB" </dev/null >>"$SUB/runner.log" 2>&1 &
    printf '%s\n' "$!" >"$SUB/pid"
    printf '%s\n' "$!"
    ;;
  run)
    SUB=$2
    read_plan
    mkdir -p "$BASE/outputs" "$BASE/.work" "$BASE/locks"
    # whatever happens, the run ends with finished.log (repx run --wait reads it)
    trap 'rc=$?; ((SUMMARY_WRITTEN)) || printf "runner-failed\t%s\n" "$rc" >>"$SUB/progress.log";
      mv "$SUB/progress.log" "$SUB/finished.log"' EXIT
    run_plan >"$SUB/progress.log"
    ;;
  snapshot)
    # stdin: "job<TAB>output<TAB>…" per job of the lab; stdout: S (intact success), D
    # (damaged success: why), R (running: a live runner holds its lock), then the store's
    # completions after a line "--"
    BASE=$2
    while IFS=$'\t' read -r -a fields; do
      job=${fields[0]}
      if lock_held "$BASE/locks/$job.rlock"; then
        printf 'R\t%s\n' "$job"
        continue
      fi
      dir=$BASE/outputs/$job
      [[ -e $dir ]] || continue
      if [[ ! -d $dir/out || -L $dir/out || -e $dir/repx/FAIL ]]; then
        [[ -e $dir/repx/SUCCESS ]] && printf 'D\t%s\tout/ is missing\n' "$job"
        continue
      fi
      why=""
      for rel in "${fields[@]:1}"; do
        [[ -e $dir/out/$rel ]] || why+="${why:+, }$rel"
      done
      if [[ -n $why ]]; then
        printf 'D\t%s\tdeclared output(s) missing: %s\n' "$job" "$why"
      else
        printf 'S\t%s\n' "$job"
      fi
    done
    printf -- '--\n'
    [[ -f $BASE/completions.jsonl ]] && cat "$BASE/completions.jsonl"
    exit 0
    ;;
  log)
    # printed on stderr: repx hands it over line by line while following
    exec 1>&2
    BASE=$2 job=$3 file=$4 lines=$5 follow=$6
    attempts=("$BASE/.work/$job".*)
    path=$BASE/outputs/$job/repx/$file
    running=0
    if lock_held "$BASE/locks/$job.rlock" && ((${#attempts[@]})); then
      path=${attempts[0]}/repx/$file
      running=1
    fi
    [[ -f $path ]] || { printf 'no %s for job %s\n' "$file" "$job" >&2; exit 3; }
    if ((lines >= 0)); then tail -n "$lines" "$path"; else cat "$path"; fi
    ((follow && running)) || exit 0
    offset=$(wc -c <"$path")
    while lock_held "$BASE/locks/$job.rlock"; do
      sleep 0.5
      size=$(wc -c <"$path" 2>/dev/null) || break
      ((size > offset)) && tail -c +$((offset + 1)) "$path" | head -c $((size - offset))
      offset=$size
    done
    final=$BASE/outputs/$job/repx/$file
    if [[ -f $final ]]; then
      size=$(wc -c <"$final")
      ((size > offset)) && tail -c +$((offset + 1)) "$final"
    fi
    exit 0
    ;;
  output)
    # a committed job's out/ (never an attempt's): "file" and the file REL, or "listing"
    # and the directory REL listed ("f<TAB>size<TAB>path" / "d<TAB>-<TAB>path/");
    # exit 4: no outputs; 5: no REL; 6: REL leaves out/
    BASE=$2 job=$3 rel=${4:-}
    out=$BASE/outputs/$job/out
    [[ -d $out && ! -L $out ]] || exit 4
    target=$out${rel:+/$rel}
    [[ -e $target ]] || exit 5
    real=$(readlink -f "$target") && root=$(readlink -f "$out") || exit 6
    [[ $real == "$root" || $real == "$root"/* ]] || exit 6
    if [[ ! -d $target ]]; then
      printf 'file\n'
      exec cat "$target"
    fi
    cd "$target" || exit 5
    printf 'listing\n'
    find . -mindepth 1 | sort | while IFS= read -r entry; do
      entry=${entry#./}
      if [[ -d $entry && ! -L $entry ]]; then
        printf 'd\t-\t%s/\n' "$entry"
      else
        printf 'f\t%s\t%s\n' "$(stat -c %s "$entry")" "$entry"
      fi
    done
    ;;
  cancel)
    SUB=$2
    read -r pid <"$SUB/pid" || exit 0
    [[ -e $SUB/finished.log ]] && exit 0
    kill -TERM "$pid" 2>/dev/null || exit 0
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    ;;
  *)
    printf 'usage: runner.sh start SUB | run SUB | snapshot BASE | log … | cancel SUB\n' >&2
    exit 2
    ;;
esac
