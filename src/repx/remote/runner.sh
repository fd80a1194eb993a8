# shellcheck shell=bash
# repx remote runner: runs a submitted plan on an SSH target that has neither repx nor Nix.
#
# It is started by the lab's own host-tools bash (`<tools>/bash runner.sh COMMAND …`), and
# calls only bash builtins and the lab's host-tools (busybox, bwrap): nothing of the remote
# host but /bin/sh (the shebang of the host-tools wrappers) and the kernel.
#
# repx (on the user's machine) decides everything that needs the lab's semantics and writes
# it into the submission directory SUB (docs/remote.md, "The remote runner"):
#   SUB/settings         NUL-separated: base, lab dir, lab id, PATH of jobs, max jobs,
#                        continue (0/1), runtime (bwrap/native)
#   SUB/nodes.tsv        one node per line in topological order: index, kind (J job |
#                        B run barrier), id, predecessors ("3h 5s": node 3 must succeed,
#                        node 5 must finish; "-": none), flags (g: gathered inputs,
#                        f: forced, run --force; s: scatter-gather; "-": none),
#                        parameters file
#   SUB/argv.nul, outputs.nul, dirs.nul, inputs.nul
#                        one NUL-terminated record per node index: the job's full argv
#                        (bwrap …), its declared outputs, their parent directories (fields
#                        separated by \x1f) and its inputs.json; @@WORK@@ stands for the
#                        attempt directory
#   SUB/gathers/<index>/gather-*.json   the lists of gathered inputs
#   SUB/metadata.nul     per node: the run descriptions of its metadata__<run> inputs, pairs
#                        of fields (file name in repx/, template key)
#   SUB/scatter/<index>/  a scatter-gather job's pieces (below, "scatter-gather jobs")
#   SUB/metadata/<key>.nul, <key>.jobs   a run description cut where each job's status
#                        goes (NUL-terminated pieces), and those jobs' ids (one a line)
# This script only executes that plan with the output store's protocol (docs/running.md):
# an attempt in .work/<id>.<nonce>/{out,repx}, logs, result.json, a SUCCESS or FAIL marker,
# one rename to outputs/<id>, one line appended to completions.jsonl. Per-job locks are
# the attempt directories themselves: .work/<id> (mkdir is atomic) with the runner's pid
# and host in repx/owner; the commit (its rename to outputs/<id>) releases it.
#
# Commands: start SUB | run SUB | follow SUB | snapshot BASE | log BASE JOB FILE LINES FOLLOW |
# output BASE JOB [PATH] | live ROOT (job ids on stdin) | scatter SUB INDEX WORK |
# work-items FILE | cancel SUB
set -u
shopt -s nullglob
# a decimal point in $EPOCHREALTIME and numbers, whatever locale ssh passed on
export LC_ALL=C
# the runner's own tools: the host-tools directory its bash was started from
PATH="${BASH%/*}:$PATH"

PLACEHOLDER='@@WORK@@'
US=$'\x1f' # separates the fields of a record of the plan's *.nul files

json_string() { # $1 variable name, $2 text: the variable is set to a JSON string literal
  local s=$2
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf -v "$1" '"%s"' "$s"
}

read_file() { # $1 variable name, $2 file: the variable is set to its text (no fork)
  IFS= read -r -d '' "$1" <"$2" || [[ -n ${!1} ]]
}

# -- locks -----------------------------------------------------------------------------
# A job's lock is its attempt directory .work/<job> (mkdir is atomic) with the holder's pid
# and host in repx/owner: the commit renames it to outputs/<job>, which releases it.

lock_held() { # $1 attempt dir: true while a live process on this host holds it
  local owner pid host
  [[ -d $1 ]] || return 1
  read -r owner <"$1/repx/owner" 2>/dev/null || return 0 # being created: held
  pid=${owner%% *}
  host=${owner#* }
  [[ $host != "$HOST" ]] && return 0 # another host: assume held
  kill -0 "$pid" 2>/dev/null
}

# -- one job ---------------------------------------------------------------------------
# Hot path: bash builtins only, but for one mkdir (lock and attempt directories), the job's
# own exec and, when it ends, one mv (the commit) and one rm (the lock).

declare -A WORK START NONCE PID_OF
declare -a TRIES PREPARED

# jq: the last recorded status of each job named in file $1, from completions.jsonl on
# stdin ("job<TAB>status" lines); a torn line (a crash while appending) is skipped
# shellcheck disable=SC2016 # jq's variables, not the shell's
LAST_STATUS='($w | split("\n") | map(select(length > 0) | {key: ., value: true}) | from_entries) as $want
  | reduce (inputs | fromjson? | objects
      | select((.job | type) == "string" and (.status | type) == "string")
      | select($want[.job])) as $r ({}; .[$r.job] = $r.status)
  | to_entries[] | "\(.key)\t\(.value)"'

describe() { # $1 template key, $2 file: the run's description with each job's status now
  local key=$1 pieces=() ids=() parts=() k j st answer completions=$BASE/completions.jsonl
  local -A last=()
  mapfile -d '' -t pieces <"$SUB/metadata/$key.nul" || return 1
  mapfile -t ids <"$SUB/metadata/$key.jobs" || return 1
  ((${#pieces[@]} == ${#ids[@]} + 1)) || return 1
  [[ -f $completions ]] || completions=/dev/null
  answer=$(jq -r -n -R --rawfile w "$SUB/metadata/$key.jobs" "$LAST_STATUS" <"$completions") ||
    return 1
  while IFS=$'\t' read -r j st; do [[ -n $j ]] && last[$j]=$st; done <<<"$answer"
  parts=("${pieces[0]}")
  for k in "${!ids[@]}"; do
    j=${ids[k]}
    st=${last[$j]:-missing}
    # as the local store's index: a success whose outputs are gone is missing
    [[ $st == succeeded && ! -d $BASE/outputs/$j ]] && st=missing
    [[ $st =~ ^[a-z_]+$ ]] || st=missing
    parts+=("\"$st\"" "${pieces[k + 1]}")
  done
  printf '%s' "${parts[@]}" >"$2"
}

write_inputs() { # $1 node, $2 directory the gather lists are in, $3 the attempt
  local text=${INPUTS[$1]}
  printf '%s\n' "${text//"$PLACEHOLDER"/$2}" >"$3/repx/inputs.json"
}

copy_file() { # $1 from, $2 to (text files: parameters, gather lists)
  local text=""
  read_file text "$1" || return 1
  printf '%s' "$text" >"$2"
}

#: attempts are prepared (and so locked) this many at a time: one mkdir for them all
BATCH=32

prepare() { # $1 node: create its attempt directory, and those of the next ready jobs
  local i=$1 k n j job w rel rels=() dirs=() stale=() batch=() candidates=("$1")
  for ((k = QHEAD; k < ${#READY[@]} && ${#candidates[@]} < BATCH; k++)); do
    j=${READY[k]}
    ((j != i)) && [[ ${STATE[$j]} == P && ${KIND[$j]} == J && -z ${PREPARED[$j]:-} ]] &&
      candidates+=("$j")
  done
  for j in "${candidates[@]}"; do
    job=${ID[$j]}
    w="$BASE/.work/$job"
    if [[ -d $w ]]; then
      lock_held "$w" && continue # another runner's: launch() waits for it
      stale+=("$w")              # a dead runner's attempt
    fi
    batch+=("$j")
    dirs+=("$w" "$w/out" "$w/repx")
    if [[ -n ${DIRS[$j]} ]]; then
      IFS=$US read -r -a rels <<<"${DIRS[$j]}"
      for rel in "${rels[@]}"; do dirs+=("$w/out/$rel"); done
    fi
  done
  ((${#stale[@]})) && rm -rf "${stale[@]}"
  ((${#batch[@]})) || return 0
  mkdir "${dirs[@]}" 2>/dev/null
  set -C # the owner file is created exclusively: of two runners, one takes the job
  for j in "${batch[@]}"; do
    w="$BASE/.work/${ID[$j]}"
    if { printf '%s %s\n' "$$" "$HOST" >"$w/repx/owner"; } 2>/dev/null; then
      PREPARED[j]=1
      printf -v n '%04x%04x%04x' $RANDOM $RANDOM $RANDOM
      NONCE[${ID[$j]}]=$n
    elif [[ -d $w/repx ]]; then
      PREPARED[j]=other
    else
      PREPARED[j]=failed
    fi
  done
  set +C
}

exec_job() { # $1 working directory, $2 job id, $3 log directory, the rest: argv. Never returns:
  # run in a subshell (`exec_job … &`). The job gets a clean environment and the logs.
  cd "$1" || exit 126
  local id=$2 logs=$3
  shift 3
  if [[ $RUNTIME == bwrap ]]; then
    # bwrap --die-with-parent: stopping bwrap ends everything in the sandbox
    exec env -i "PATH=$JOB_PATH" HOME=/homeless-shelter TMPDIR=/tmp LANG=C.UTF-8 \
      "REPX_JOB_ID=$id" "$@" </dev/null >"$logs/stdout.log" 2>"$logs/stderr.log"
  fi
  # its own process group (setsid execs: same pid), so that a stop reaches all of it
  exec setsid env -i "PATH=$JOB_PATH" HOME=/homeless-shelter TMPDIR=/tmp LANG=C.UTF-8 \
    "REPX_JOB_ID=$id" "$@" </dev/null >"$logs/stdout.log" 2>"$logs/stderr.log"
}

launch() { # $1 node index: prepare the attempt and start the job in the background
  local i=$1 job=${ID[$1]} w out args=() g
  if [[ ${FLAGS[$i]} != *f* && -d $BASE/outputs/$job/out && -e $BASE/outputs/$job/repx/SUCCESS ]]; then
    settle "$i" S # committed meanwhile (another runner)
    DONE=$((DONE + 1))
    return 0
  fi
  w="$BASE/.work/$job"
  [[ -n ${PREPARED[$i]:-} ]] || prepare "$i"
  case ${PREPARED[$i]:-} in
    1) ;;
    failed)
      unset "PREPARED[$i]"
      fail_start "$i" "cannot create $w"
      return 0
      ;;
    *)
      unset "PREPARED[$i]"
      if ((${TRIES[$i]:-0} < 60)); then
        TRIES[i]=$((${TRIES[$i]:-0} + 1))
        WAITQ+=("$i") # held by another runner: look again later
        return 0
      fi
      rm -rf "$w" # held for a minute without an owner: a runner that died creating it
      prepare "$i"
      [[ ${PREPARED[$i]:-} == 1 ]] || {
        unset "PREPARED[$i]"
        fail_start "$i" "cannot create $w"
        return 0
      }
      ;;
  esac
  PREPARED[i]=started
  out="$w/out"
  WORK[$job]=$w
  if ! copy_file "$LAB/${PARAMS[$i]}" "$w/repx/parameters.json"; then
    fail_start "$i" "cannot copy parameters"
    return 0
  fi
  for g in "$SUB/gathers/$i"/gather-*.json; do copy_file "$g" "$w/repx/${g##*/}"; done
  if [[ -n ${METAS[$i]} ]]; then
    # statuses as of now: a soft run dependency may have failed jobs
    IFS=$US read -r -a args <<<"${METAS[$i]}"
    for ((g = 0; g + 1 < ${#args[@]}; g += 2)); do
      describe "${args[g + 1]}" "$w/repx/${args[g]}" || {
        fail_start "$i" "cannot describe the run of input ${args[g]}"
        return 0
      }
    done
  fi
  write_inputs "$i" "$w" "$w"
  IFS=$US read -r -a args <<<"${ARGV[$i]}"
  args=("${args[@]//"$PLACEHOLDER"/$w}")
  # a scatter-gather job: this script orchestrates its pieces (runner.sh scatter)
  [[ ${FLAGS[$i]} == *s* ]] && args=("$BASH" "${BASH_SOURCE[0]}" scatter "$SUB" "$i" "$w")
  START[$job]=$EPOCHREALTIME
  exec_job "$out" "$job" "$w/repx" "${args[@]}" &
  PID_OF[$!]=$i
  STATE[i]=R
  RUNNING=$((RUNNING + 1))
}

discard_prepared() { # the attempt directories prepared for jobs that will not start now
  local j gone=()
  for j in "${!PREPARED[@]}"; do
    [[ ${PREPARED[$j]} == 1 ]] && gone+=("$BASE/.work/${ID[$j]}")
  done
  ((${#gone[@]})) && rm -rf "${gone[@]}"
  PREPARED=()
}

fail_start() { # $1 node, $2 why: the job could not be started (nothing recorded)
  local job=${ID[$1]}
  printf 'repx remote: %s: %s\n' "$job" "$2" >&2
  printf 'finished\t%s\terror\t\t0\t%s\n' "$job" "$2"
  [[ -n ${WORK[$job]:-} ]] && rm -rf "${WORK[$job]}"
  unset "WORK[$job]"
  FAILED=$((FAILED + 1))
  settle "$1" F
}

finish() { # $1 node index, $2 exit status, $3 interrupted (0/1): commit the attempt
  local i=$1 code=$2 job=${ID[$1]} w status reason why="" rel missing="" final end record
  local marker us j_job j_host j_lab rels=() line trash kept=0
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
    # a scatter-gather job's orchestrator says which piece failed
    [[ ${FLAGS[$i]} == *s* ]] && read -r why 2>/dev/null <"$w/repx/pieces-reason.txt"
    [[ -n $why ]] || why="exit status $code"
  elif [[ -n ${OUTPUTS[$i]} ]]; then
    IFS=$US read -r -a rels <<<"${OUTPUTS[$i]}"
    for rel in "${rels[@]}"; do
      [[ -e $w/out/$rel ]] || missing+="${missing:+, }$rel"
    done
    if [[ -n $missing ]]; then
      status=failed
      why="declared output(s) missing: $missing"
    fi
  fi
  [[ -n $why ]] && json_string reason "$why"
  json_string j_job "$job"
  json_string j_host "$HOST"
  json_string j_lab "$LAB_ID"
  record="{\"job\":$j_job,\"status\":\"$status\",\"exit_code\":$code"
  record+=",\"reason\":$reason,\"start\":${START[$job]},\"end\":$end"
  record+=",\"host\":$j_host,\"runtime\":\"$RUNTIME\""
  record+=",\"lab_id\":$j_lab,\"attempt\":\"${NONCE[$job]}\""
  record+=",\"cpu_seconds\":null,\"max_rss_kib\":null,\"impure\":[]}"
  [[ ${FLAGS[$i]} == *g* ]] && write_inputs "$i" "$final" "$w"
  marker=FAIL
  [[ $status == succeeded ]] && marker=SUCCESS
  trash=""
  if printf '%s\n' "$record" >"$w/repx/result.json" && : >"$w/repx/$marker"; then
    [[ $status != succeeded && -d $w/out ]] && mv "$w/out" "$w/failed-out"
    if [[ ${FLAGS[$i]} == *f* && $status != succeeded && -d $final/out && -e $final/repx/SUCCESS ]]; then
      # a forced rerun that failed: the committed success stays the job's result; the
      # attempt is kept beside it, unrecorded (as the local store does)
      rm -rf "$final/failed-rerun" && mv "$w" "$final/failed-rerun" || status=error
      kept=1
    elif [[ -e $final ]]; then
      # moved aside now, deleted after the commit: a forced success is replaced by two
      # renames, never missing for longer
      mv "$final" "$w.trash" && trash="$w.trash"
    fi
  else
    status=error # a full disk: the attempt stays in .work, nothing is visible
  fi
  RUNNING=$((RUNNING - 1))
  unset "PREPARED[$i]"
  us=$((${end/./} - ${START[$job]/./}))
  printf -v line 'finished\t%s\t%s\t%s\t%d.%06d\t%s' "$job" "$status" "$code" \
    $((us / 1000000)) $((us % 1000000)) "$why"
  if ((kept)) && [[ $status != error ]]; then
    printf '%s\n' "$line"
    FAILED=$((FAILED + 1))
    settle "$i" F
    return 0
  fi
  if [[ $status == error ]]; then
    printf '%s\n' "$line"
    FAILED=$((FAILED + 1))
    settle "$i" F
    return 0
  fi
  # committed with the next batch (commit_batch): one mv for several jobs
  COMMIT_W+=("$w")
  COMMIT_I+=("$i")
  COMMIT_RECORD+=("$record")
  COMMIT_LINE+=("$line")
  [[ -n $trash ]] && COMMIT_TRASH+=("$trash")
  # a failure is committed at once: --continue-on-failure or not decides what starts
  # next; so is a job whose earlier result was moved aside
  if ((${#COMMIT_W[@]} >= BATCH)) || [[ $status != succeeded || -n $trash ]]; then
    commit_batch
  fi
  return 0
}

COMMIT_W=()
COMMIT_I=()
COMMIT_RECORD=()
COMMIT_LINE=()
COMMIT_TRASH=()

commit_batch() { # rename the finished attempts to outputs/<job> (one mv), record them
  local k i st
  ((${#COMMIT_W[@]})) || return 0
  if ! mv "${COMMIT_W[@]}" "$BASE/outputs/" 2>/dev/null; then
    : # some renames failed: each attempt still in .work is an error below
  fi
  ((${#COMMIT_TRASH[@]})) && rm -rf "${COMMIT_TRASH[@]}"
  COMMIT_TRASH=()
  for k in "${!COMMIT_W[@]}"; do
    i=${COMMIT_I[k]}
    if [[ -e ${COMMIT_W[k]} ]]; then
      printf '%s\n' "${COMMIT_LINE[k]/$'\t'succeeded$'\t'/$'\t'error$'\t'}"
      FAILED=$((FAILED + 1))
      settle "$i" F
      continue
    fi
    printf '%s\n' "${COMMIT_RECORD[k]}" >>"$BASE/completions.jsonl"
    printf '%s\n' "${COMMIT_LINE[k]}"
    st=${COMMIT_LINE[k]#*$'\t'*$'\t'}
    if [[ ${st%%$'\t'*} == succeeded ]]; then
      DONE=$((DONE + 1))
      settle "$i" S
    else
      FAILED=$((FAILED + 1))
      settle "$i" F
    fi
  done
  COMMIT_W=()
  COMMIT_I=()
  COMMIT_RECORD=()
  COMMIT_LINE=()
}

# -- the plan --------------------------------------------------------------------------
# Nodes in topological order; each counts the predecessors it still waits for (NWAIT) and
# lists its successors (SUCCS: "index:kind" with kind h = must succeed, s = must finish).
# A node whose count reaches 0 joins the READY queue; one whose hard predecessor failed
# or was blocked is blocked at once. States: P pending, R running, S succeeded,
# F failed, B blocked.

declare -a ID KIND PARAMS FLAGS STATE NWAIT SUCCS ARGV OUTPUTS DIRS INPUTS METAS
READY=()
WAITQ=()
QHEAD=0

read_plan() {
  local settings=() idx kind id preds flags params p
  mapfile -d '' -t settings <"$SUB/settings"
  BASE=${settings[0]}
  LAB=${settings[1]}
  LAB_ID=${settings[2]}
  JOB_PATH=${settings[3]}
  MAX_JOBS=${settings[4]}
  CONTINUE=${settings[5]}
  RUNTIME=${settings[6]:-bwrap}
  mapfile -d '' -t ARGV <"$SUB/argv.nul"
  mapfile -d '' -t OUTPUTS <"$SUB/outputs.nul"
  mapfile -d '' -t DIRS <"$SUB/dirs.nul"
  mapfile -d '' -t INPUTS <"$SUB/inputs.nul"
  mapfile -d '' -t METAS <"$SUB/metadata.nul"
  while IFS=$'\t' read -r idx kind id preds flags params; do
    ID[idx]=$id
    KIND[idx]=$kind
    FLAGS[idx]=$flags
    PARAMS[idx]=$params
    STATE[idx]=P
    NWAIT[idx]=0
    SUCCS[idx]=""
    for p in $preds; do
      [[ $p == - ]] && continue
      NWAIT[idx]=$((NWAIT[idx] + 1))
      SUCCS[${p%?}]+=" $idx:${p: -1}"
    done
    ((NWAIT[idx] == 0)) && READY+=("$idx")
  done <"$SUB/nodes.tsv"
}

settle() { # $1 node, $2 its final state (S, F or B): release or block its successors
  local work=("$1") states=("$2") n st s j kind
  while ((${#work[@]})); do
    n=${work[-1]}
    st=${states[-1]}
    unset 'work[-1]' 'states[-1]'
    STATE[n]=$st
    for s in ${SUCCS[$n]}; do
      j=${s%:*}
      kind=${s#*:}
      [[ ${STATE[$j]} == P ]] || continue
      if [[ $st != S && $kind == h ]]; then
        STATE[j]=B # settled below: nothing else may release it
        if [[ ${KIND[$j]} == J ]]; then
          BLOCKED=$((BLOCKED + 1))
          printf 'blocked\t%s\tan upstream job did not succeed\n' "${ID[$j]}"
        fi
        work+=("$j")
        states+=(B)
        continue
      fi
      NWAIT[j]=$((NWAIT[j] - 1))
      ((NWAIT[j] == 0)) && READY+=("$j")
    done
  done
}

STOPPING=0
SUMMARY_WRITTEN=0
on_exit() { # the run ends with finished.log, whatever happened (repx run --wait reads it)
  local rc=$?
  ((SUMMARY_WRITTEN)) || printf 'runner-failed\t%s\n' "$rc" >>"$SUB/progress.log"
  mv "$SUB/progress.log" "$SUB/finished.log"
}
SIGNALLED=0
on_signal() { STOPPING=1; }

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

ours() { # $1 pid: still our child? bash reaps ended jobs before `wait` names them, and
  # the kernel may give a reaped pid to anyone (pid_max can be 32768): never signal those
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) } # after "pid (comm) ": "state ppid …"
  stat=${stat#* }
  [[ ${stat%% *} == "$$" ]]
}

stop_jobs() {
  local pid
  for pid in "${!PID_OF[@]}"; do
    ours "$pid" || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  done
}

run_plan() {
  local i code pid
  RUNNING=0 DONE=0 FAILED=0 BLOCKED=0
  trap on_signal TERM INT HUP
  printf 'started\t%s\n' "$$"
  while :; do
    while ((QHEAD < ${#READY[@]} && RUNNING < MAX_JOBS && !STOPPING)); do
      ((FAILED > 0 && CONTINUE == 0)) && break
      i=${READY[QHEAD]}
      QHEAD=$((QHEAD + 1))
      [[ ${STATE[$i]} == P ]] || continue
      if [[ ${KIND[$i]} == B ]]; then
        settle "$i" S # a run barrier: its run's jobs have finished
      else
        launch "$i"
      fi
    done
    if ((${#COMMIT_W[@]} && RUNNING < MAX_JOBS)) &&
      ((QHEAD >= ${#READY[@]} || STOPPING || (FAILED > 0 && CONTINUE == 0))); then
      commit_batch # room to run more: what the finished jobs release may start
      continue
    fi
    if ((RUNNING == 0)); then
      # nothing runs: done, unless a job waits for another runner's lock
      ((${#WAITQ[@]} && !STOPPING)) || break
      ((FAILED > 0 && CONTINUE == 0)) && break
      sleep 1
      READY+=("${WAITQ[@]}")
      WAITQ=()
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
      # interrupted by a signal (the jobs are stopped above); bash may have reaped jobs
      # meanwhile, which `wait -n` then never names: `wait PID` gives the status it kept
      reap_ended
      continue
    fi
    i=${PID_OF[$pid]}
    unset "PID_OF[$pid]"
    finish "$i" "$code" "$STOPPING"
  done
  commit_batch
  discard_prepared
  local pending=0
  for i in "${!ID[@]}"; do
    [[ ${KIND[$i]} == J && ${STATE[$i]} == P ]] && pending=$((pending + 1))
  done
  printf 'summary\t%s\t%s\t%s\t%s\t%s\n' "$DONE" "$FAILED" "$BLOCKED" "$pending" "$STOPPING"
  SUMMARY_WRITTEN=1
}

# -- scatter-gather jobs ----------------------------------------------------------------
# `runner.sh scatter SUB INDEX WORK` is the process of a scatter-gather job (locally
# `python -m repx.run.scatter`; docs/remote.md, "Scatter-gather jobs"), with the same
# layout in the store: the pieces under <base>/pieces/<job>/ (scatter/, branch-N/
# work_item.json, branch-N/step-S/, gather/, .work/<piece>.<nonce>/ in progress), each
# committed there by rename so that a later attempt runs only the pieces not done; the
# gather's out/ becomes the attempt's, and the pieces move into the attempt.
# SUB/scatter/<index>/: settings (NUL-separated: pieces dir, committed dir, cpu budget,
# work item list, sink step, number of steps); <n>.nul, one piece each (0 the scatter,
# 1… the steps in order, the last the gather): key, cpus, deps, outputs, their parent
# directories (fields separated by \x1f), inputs.json, argv; outs-pieces, outs-final:
# one element of worker__outs. @@BRANCH@@ stands for the branch, @@PIECE@@ for the
# piece's attempt directory.

# jq: the work items (file $t), one a line, each as Python's json.dumps(item,
# sort_keys=True) writes it, as locally (the steps read these files). jq 1.6 reads 1.0 as
# 1 and rounds large integers: the numbers' own text is kept — the text is cut at its
# quotes (an escaped one rejoined), numbers outside strings become strings "n<literal>"
# and strings "s<text>", then parsed — and formatted as Python does (a float: its
# shortest digits, jq's, laid out as Python's repr; an integer as written; strings ASCII
# with \uXXXX escapes; keys sorted). Under 1 ms per item with jq 1.6.
# shellcheck disable=SC2016 # jq's variables, not the shell's
WORK_ITEMS='def hex4: [(. / 4096 | floor) % 16, (. / 256 | floor) % 16, (. / 16 | floor) % 16, . % 16]
  | map("0123456789abcdef"[.:. + 1]) | join("");
# the encoding of jq is that of Python for printable ASCII (lowercase \u00XX for controls)
def pystr: tojson as $j | if ($j | explode | max) < 127 then $j else "\"" + (explode | map(
    if . == 34 then "\\\"" elif . == 92 then "\\\\" elif . == 10 then "\\n"
    elif . == 13 then "\\r" elif . == 9 then "\\t" elif . == 8 then "\\b"
    elif . == 12 then "\\f"
    elif . > 65535 then (. - 65536) as $c
      | "\\u" + ((55296 + ($c / 1024 | floor)) | hex4) + "\\u" + ((56320 + $c % 1024) | hex4)
    elif . < 32 or . > 126 then "\\u" + hex4
    else [.] | implode end) | join("")) + "\"" end;
def zeros($n): [range($n) | "0"] | join("");
# a float as the repr of Python writes it: the shortest digits (those of jq), in fixed notation when
# -4 < decimal point <= 16 (with ".0" if integral), else d.ddde+XX
def pyfloat: (tonumber | tojson) as $s
  | (if $s | startswith("-") then "-" else "" end) as $sign
  | ($s | ltrimstr("-") | split("e")) as $me
  | ($me[0] | split(".")) as $ip
  | ($ip[0] + ($ip[1] // "")) as $all
  | ($all | explode | map(. == 48)) as $z
  | (($z | index(false)) // ($z | length)) as $lead
  | (($z | reverse | index(false)) // ($z | length)) as $trail
  | ($all[$lead:(($all | length) - $trail)]) as $d
  | (($ip[0] | length) + (($me[1] // "0") | ltrimstr("+") | tonumber) - $lead) as $p
  | if $d == "" then $sign + "0.0"
    elif $p > -4 and $p <= 16 then $sign + (
      if $p <= 0 then "0." + zeros(- $p) + $d
      elif $p >= ($d | length) then $d + zeros($p - ($d | length)) + ".0"
      else $d[:$p] + "." + $d[$p:] end)
    else ($p - 1) as $e
      | $sign + $d[:1] + (if ($d | length) > 1 then "." + $d[1:] else "" end) + "e"
        + (if $e < 0 then "-" else "+" end)
        + (($e | fabs | tostring) as $x | if ($x | length) < 2 then "0" + $x else $x end)
    end;
def pynum: if (index(".") // index("e") // index("E")) != null then pyfloat
  elif . == "-0" then "0" else . end;
def py: if type == "object" then
    if length == 0 then "{}"
    else "{" + (to_entries | sort_by(.key)
      | map((.key[1:] | pystr) + ": " + (.value | py)) | join(", ")) + "}" end
  elif type == "array" then
    if length == 0 then "[]" else "[" + (map(py) | join(", ")) + "]" end
  elif type == "string" then
    if startswith("n") then .[1:] | pynum else .[1:] | pystr end
  else tojson end;
def outside: reduce ("\n", "\t", "\r") as $w (.; split($w) | join(" "))
  | reduce ("[", "]", "{", "}", ":", ",") as $c (.; split($c) | join(" " + $c + " "))
  | split(" ") | map(select(length > 0)
    | if .[0:1] as $c | "-0123456789" | index($c) != null then "\"n" + . + "\"" else . end)
  | join("");
def odd_backslashes: endswith("\\") and (explode | reverse
  | reduce .[] as $c ({n: 0, on: true}; if .on and $c == 92 then .n += 1 else .on = false end)
  | .n % 2 == 1);
if ($t | fromjson | type) != "array" then error("must be a JSON list") else . end
| [foreach ($t | split("\""))[] as $p ({str: null, first: true, emit: null};
    if .first then .emit = ($p | outside) | .first = false
    elif .str == null then .str = $p | .emit = null
    elif (.str | odd_backslashes) then .str += "\"" + $p | .emit = null
    else .emit = "\"s" + .str + "\"" + ($p | outside) | .str = null end;
    .emit // empty)]
| join("") | fromjson | .[] | py'

declare -a P_KEY P_CPUS P_DEPS P_OUTS P_DIRS P_INPUTS P_ARGV T_P T_N T_KEY
declare -A S_PID=() S_WORK=() S_NONCE=() S_START=() UNFINISHED=()
SG_STOP=0
SG_WHY=""

sg_done() { # $1 piece, $2 its key: committed with its declared outputs
  local rel rels=()
  [[ -e $PIECES/$2/repx/SUCCESS ]] || return 1
  [[ -n ${P_OUTS[$1]} ]] || return 0
  IFS=$US read -r -a rels <<<"${P_OUTS[$1]}"
  for rel in "${rels[@]}"; do [[ -e $PIECES/$2/out/$rel ]] || return 1; done
}

sg_start() { # $1 todo entry: create the piece's attempt and start it in the background
  local t=$1 p=${T_P[$1]} n=${T_N[$1]} key=${T_KEY[$1]} nonce pw rel rels=() dirs=() args=()
  local text
  printf -v nonce '%04x%04x%04x' $RANDOM $RANDOM $RANDOM
  pw="$PIECES/.work/${key//\//.}.$nonce"
  dirs=("$pw" "$pw/out" "$pw/repx")
  if [[ -n ${P_DIRS[$p]} ]]; then
    IFS=$US read -r -a rels <<<"${P_DIRS[$p]}"
    for rel in "${rels[@]}"; do dirs+=("$pw/out/$rel"); done
  fi
  if ! mkdir -p "${dirs[@]}" || ! copy_file "$LAB/$SG_PARAMS" "$pw/repx/parameters.json"; then
    rm -rf "$pw"
    return 1
  fi
  text=${P_INPUTS[$p]//"$PLACEHOLDER"/$WORK}
  printf '%s' "${text//@@BRANCH@@/$n}" >"$pw/repx/inputs.json"
  IFS=$US read -r -a args <<<"${P_ARGV[$p]}"
  args=("${args[@]//@@PIECE@@/$pw}")
  args=("${args[@]//"$PLACEHOLDER"/$WORK}")
  args=("${args[@]//@@BRANCH@@/$n}")
  S_START[$t]=$EPOCHREALTIME
  exec_job "$pw/out" "$SG_JOB" "$pw/repx" "${args[@]}" &
  S_PID[$!]=$t
  S_WORK[$t]=$pw
  S_NONCE[$t]=$nonce
}

sg_finish() { # $1 todo entry, $2 exit status: commit the piece; false (SG_WHY) if it failed
  local t=$1 code=$2 p=${T_P[$1]} key=${T_KEY[$1]} pw=${S_WORK[$1]} why="" missing="" rel
  local rels=() final status=succeeded reason=null record end line j_job j_host j_lab
  unset "UNFINISHED[$key]"
  if ((SG_STOP)) && [[ $code != 0 ]]; then
    rm -rf "$pw" # stopped: not an outcome
    SG_WHY=interrupted
    return 1
  fi
  end=$EPOCHREALTIME
  if ((code > 128)); then
    why="killed by signal $((code - 128))"
  elif [[ $code != 0 ]]; then
    why="exit status $code"
  elif [[ -n ${P_OUTS[$p]} ]]; then
    IFS=$US read -r -a rels <<<"${P_OUTS[$p]}"
    for rel in "${rels[@]}"; do [[ -e $pw/out/$rel ]] || missing+="${missing:+, }$rel"; done
    [[ -n $missing ]] && why="declared output(s) missing: $missing"
  fi
  [[ -n $why ]] && status=failed && json_string reason "$why"
  json_string j_job "$SG_JOB/$key"
  json_string j_host "$HOST"
  json_string j_lab "$LAB_ID"
  record="{\"job\":$j_job,\"status\":\"$status\",\"exit_code\":$code,\"reason\":$reason"
  record+=",\"start\":${S_START[$t]},\"end\":$end,\"host\":$j_host,\"runtime\":\"$RUNTIME\""
  record+=",\"lab_id\":$j_lab,\"attempt\":\"${S_NONCE[$t]}\""
  record+=",\"cpu_seconds\":null,\"max_rss_kib\":null,\"impure\":[]}"
  printf '%s\n' "$record" >"$pw/repx/result.json"
  if [[ -n $why ]]; then
    : >"$pw/repx/FAIL"
    mv "$pw/out" "$pw/failed-out"
  else
    : >"$pw/repx/SUCCESS"
  fi
  final=$PIECES/$key
  mkdir -p "${final%/*}"
  if [[ -e $final ]]; then
    mv "$final" "$pw.old" && rm -rf "$pw.old"
  fi
  mv "$pw" "$final"
  printf '%s: %s\n' "$key" "${why:-succeeded}"
  [[ -z $why ]] && return 0
  # the job's own stderr shows the piece's last words (repx run prints its tail); no
  # process substitution: `wait -n` must see only the pieces
  line=$(tail -n 5 "$final/repx/stderr.log" 2>/dev/null)
  if [[ -n $line ]]; then
    while IFS= read -r line; do
      printf '%s: %s\n' "$key" "$line"
    done <<<"$line" >&2
  fi
  SG_WHY="$key failed ($why); its log: $final/repx/stderr.log"
  return 1
}

sg_stop_all() { # stop the running pieces, wait for them, discard their attempts
  local pid sig=TERM
  ((SG_STOP > 1)) && sig=KILL
  for pid in "${!S_PID[@]}"; do
    ours "$pid" || continue
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null
  done
  for pid in "${!S_PID[@]}"; do
    wait "$pid"
    rm -rf "${S_WORK[${S_PID[$pid]}]}"
    unset "S_PID[$pid]"
  done
}

sg_run_all() { # the todo entries "$@": dependencies first, in order, within the budget;
  # returns 0, 1 (a piece failed: SG_WHY) or 2 (stopped)
  local rem=("$@") used=0 k t p d ok pid code failure="" deps=()
  for t in "$@"; do UNFINISHED[${T_KEY[$t]}]=1; done
  while ((${#rem[@]} || ${#S_PID[@]})); do
    if ((SG_STOP)); then
      sg_stop_all
      return 2
    fi
    if [[ -z $failure ]]; then
      for k in "${!rem[@]}"; do
        t=${rem[k]}
        p=${T_P[t]}
        ((used + P_CPUS[p] > BUDGET)) && break
        ok=1
        if [[ -n ${P_DEPS[$p]} ]]; then
          # a dependency still to run (again) is not done, whatever its old marker says
          IFS=$US read -r -a deps <<<"${P_DEPS[$p]//@@BRANCH@@/${T_N[t]}}"
          for d in "${deps[@]}"; do
            [[ -z ${UNFINISHED[$d]:-} && -e $PIECES/$d/repx/SUCCESS ]] || {
              ok=0
              break
            }
          done
        fi
        ((ok)) || continue
        unset "rem[k]"
        if ! sg_start "$t"; then
          failure="${T_KEY[t]}: cannot start ${P_KEY[$p]}"
          unset "UNFINISHED[${T_KEY[t]}]"
          break
        fi
        used=$((used + P_CPUS[p]))
      done
    fi
    ((${#S_PID[@]})) || break
    pid=""
    wait -n -p pid
    code=$?
    [[ -n ${pid:-} ]] || continue # a signal: stopped above
    t=${S_PID[$pid]}
    unset "S_PID[$pid]"
    used=$((used - P_CPUS[T_P[t]]))
    if ! sg_finish "$t" "$code" && [[ -z $failure ]]; then
      failure=$SG_WHY # running pieces finish; nothing new starts
    fi
  done
  ((SG_STOP)) && return 2
  if [[ -n $failure ]]; then
    SG_WHY=$failure
    return 1
  fi
  return 0
}

sg_outs() { # $1 element file, $2 branches, $3 file: worker__outs (json.dumps(…, indent=1))
  local element parts=() n text
  read_file element "$1" || return 1
  if (($2 == 0)); then
    text='[]'
  else
    for ((n = 0; n < $2; n++)); do parts+=("${element//@@BRANCH@@/$n}"); done
    printf -v text '%s,\n' "${parts[@]}"
    text="["$'\n'"${text%,$'\n'}"$'\n'"]"
  fi
  printf '%s\n' "$text" >"$3.tmp" && mv "$3.tmp" "$3"
}

sg_failed() { # $1 why: the job fails with that reason (exit status 1, or 143 when stopped)
  printf 'repx: %s\n' "$1" >&2
  printf '%s\n' "$1" >"$WORK/repx/pieces-reason.txt.tmp" &&
    mv "$WORK/repx/pieces-reason.txt.tmp" "$WORK/repx/pieces-reason.txt"
  [[ $1 == interrupted ]] && exit 143
  exit 1
}

sg_run() { # $1 SUB/scatter/<index>
  local dir=$1 settings=() f=() p n k answer items=() item text kept=0 todo=() key rc name
  mapfile -d '' -t settings <"$dir/settings"
  PIECES=${settings[0]} # settings[1], the committed directory: in outs-final
  BUDGET=${settings[2]}
  local rel=${settings[3]} steps=${settings[5]}
  for ((p = 0; p <= steps + 1; p++)); do
    mapfile -d '' -t f <"$dir/$p.nul"
    P_KEY[p]=${f[0]} P_CPUS[p]=${f[1]} P_DEPS[p]=${f[2]} P_OUTS[p]=${f[3]}
    P_DIRS[p]=${f[4]} P_INPUTS[p]=${f[5]} P_ARGV[p]=${f[6]}
  done
  mkdir -p "$PIECES/.work" || sg_failed "cannot create $PIECES"
  # we hold the job's lock: whatever is in progress there is a dead attempt's
  rm -rf "$PIECES/.work/"* "$PIECES/.work/".[!.]*
  T_P[0]=0 T_N[0]="" T_KEY[0]=scatter
  if sg_done 0 scatter; then
    printf 'scatter: done (kept from an earlier attempt)\n'
  else
    # new work items: branches of other items must not be reused
    for name in "$PIECES"/branch-*; do
      [[ ${name##*/} =~ ^branch-[0-9]+$ ]] && rm -rf "$name"
    done
    sg_run_all 0
    rc=$?
    ((rc == 2)) && sg_failed interrupted
    ((rc == 1)) && sg_failed "$SG_WHY"
  fi
  if ! answer=$(jq -r -n --rawfile t "$PIECES/scatter/out/$rel" "$WORK_ITEMS" 2>&1); then
    answer=${answer##*$'\n'}
    answer=${answer#jq: error (at <unknown>): }
    if [[ $answer == "must be a JSON list" ]]; then
      sg_failed "the scatter's work items (\$out/$rel) must be a JSON list"
    fi
    sg_failed "the scatter's work items (\$out/$rel) cannot be read: $answer"
  fi
  [[ -n $answer ]] && mapfile -t items <<<"$answer"
  printf 'scatter: %s work item(s)\n' "${#items[@]}"
  k=1
  for n in "${!items[@]}"; do
    item=$PIECES/branch-$n/work_item.json
    text=""
    read_file text "$item" 2>/dev/null
    if [[ $text != "${items[n]}"$'\n' ]]; then
      # a branch is its work item's: another item invalidates its steps
      mkdir -p "$PIECES/branch-$n" && rm -rf "$PIECES/branch-$n/"step-*
      printf '%s\n' "${items[n]}" >"$item.tmp" && mv "$item.tmp" "$item"
    fi
    for ((p = 1; p <= steps; p++)); do
      key=${P_KEY[p]//@@BRANCH@@/$n}
      if sg_done "$p" "$key"; then
        kept=$((kept + 1))
        continue
      fi
      T_P[k]=$p T_N[k]=$n T_KEY[k]=$key
      todo+=("$k")
      k=$((k + 1))
    done
  done
  printf 'branches: %s, %s step(s) kept from earlier attempts\n' "${#items[@]}" "$kept"
  if ((${#todo[@]})); then
    sg_run_all "${todo[@]}"
    rc=$?
    ((rc == 2)) && sg_failed interrupted
    ((rc == 1)) && sg_failed "$SG_WHY"
  fi
  sg_outs "$dir/outs-pieces" "${#items[@]}" "$WORK/repx/worker_outs.json" ||
    sg_failed "cannot write worker_outs.json"
  T_P[k]=$((steps + 1)) T_N[k]="" T_KEY[k]=gather
  sg_run_all "$k"
  rc=$?
  ((rc == 2)) && sg_failed interrupted
  ((rc == 1)) && sg_failed "$SG_WHY"
  # the job's outputs are the gather's; the pieces join the attempt (then its commit)
  if ! rm -rf "$WORK/out" || ! mv "$PIECES/gather/out" "$WORK/out"; then
    sg_failed "cannot move the gather's outputs"
  fi
  for name in "$PIECES"/*; do
    mv "$name" "$WORK/" || sg_failed "cannot move ${name##*/}"
  done
  sg_outs "$dir/outs-final" "${#items[@]}" "$WORK/repx/worker_outs.json" ||
    sg_failed "cannot write worker_outs.json"
  rm -rf "$PIECES"
  printf 'gather: done (%s branch(es))\n' "${#items[@]}"
  exit 0
}

# -- commands --------------------------------------------------------------------------

slurm_alive() { # $1 SLURM job id: true while SLURM still has it queued or running
  local state
  if ! state=$(squeue --noheader --jobs="$1" --format=%T \
    --states=PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED,REQUEUED 2>&1); then
    [[ $state == *"Invalid job id"* ]] && return 1 # ended long ago
    return 0                                       # SLURM does not answer: assume it runs
  fi
  [[ -n $state ]]
}

runs_sub() { # $1 pid, $2 submission dir: that process is the runner of that submission
  local -a argv
  mapfile -d '' argv 2>/dev/null <"/proc/$1/cmdline" || return 1
  [[ ${#argv[@]} -ge 4 && ${argv[-2]} == run && ${argv[-1]} == "$2" ]]
}

runner_alive() { # $1 the submission's pid file content: true while its runner may write
  [[ -n $1 ]] || return 0
  if [[ $1 == slurm:* ]]; then
    slurm_alive "${1#slurm:}"
  else
    kill -0 "$1" 2>/dev/null
  fi
}

HOST=unknown
read -r HOST </proc/sys/kernel/hostname 2>/dev/null
command=${1:-}
case $command in
  start)
    SUB=$2
    if [[ -s $SUB/sbatch ]]; then
      # the host's SLURM runs the plan: one batch job on one node (SUB/sbatch: its options,
      # NUL-separated); pid holds "slurm:<id>"
      mapfile -d '' -t options <"$SUB/sbatch"
      printf -v wrap 'exec %q %q run %q' "$BASH" "$SUB/runner.sh" "$SUB"
      id=$(sbatch --parsable --job-name="repx-${SUB##*/}" --output="$SUB/runner.log" \
        "${options[@]}" --wrap="$wrap") || exit 1
      id=${id%%;*}
      printf 'slurm:%s\n' "$id" >"$SUB/pid"
      printf 'slurm:%s\n' "$id"
      exit 0
    fi
    setsid "$BASH" "${BASH_SOURCE[0]}" run "$SUB" </dev/null >>"$SUB/runner.log" 2>&1 &
    printf '%s\n' "$!" >"$SUB/pid"
    printf '%s\n' "$!"
    ;;
  run)
    SUB=$2
    read_plan
    mkdir -p "$BASE/outputs" "$BASE/.work"
    # whatever happens, the run ends with finished.log (repx run --wait reads it)
    trap on_exit EXIT
    run_plan >"$SUB/progress.log"
    ;;
  snapshot)
    # stdin: "job<TAB>output<TAB>…" per job of the lab; stdout: S (intact success), D
    # (damaged success: why), R (running: a live runner holds its attempt), Q (a live runner
    # prepared it, to start next), then the store's completions after a line "--"
    BASE=$2
    while IFS=$'\t' read -r -a fields; do
      job=${fields[0]}
      if lock_held "$BASE/.work/$job"; then
        # prepared by a runner (locked), or started (it has logs)
        if [[ -e $BASE/.work/$job/repx/stdout.log ]]; then
          printf 'R\t%s\n' "$job"
        else
          printf 'Q\t%s\n' "$job"
        fi
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
    path=$BASE/outputs/$job/repx/$file
    running=0
    if lock_held "$BASE/.work/$job"; then
      path=$BASE/.work/$job/repx/$file
      running=1
    fi
    [[ -f $path ]] || {
      printf 'no %s for job %s\n' "$file" "$job" >&2
      exit 3
    }
    # one open file: it stays valid when the attempt is renamed at its commit
    exec 3<"$path" || exit 3
    if ((lines >= 0)); then
      tail -n "$lines" "$path"
      cat <&3 >/dev/null
    else
      cat <&3
    fi
    ((follow && running)) || exit 0
    # until it ends (its result is written; the commit may come with a later batch)
    while lock_held "$BASE/.work/$job" && [[ ! -e $BASE/.work/$job/repx/result.json ]]; do
      sleep 0.5
      cat <&3
    done
    cat <&3
    exit 0
    ;;
  follow)
    # the progress log of submission SUB, printed on stderr as it grows, until the runner
    # ends (repx run --wait hands each line over as it comes)
    exec 1>&2
    SUB=$2
    read -r pid <"$SUB/pid" || pid=""
    while [[ ! -e $SUB/progress.log && ! -e $SUB/finished.log ]]; do
      runner_alive "$pid" || break
      sleep 0.2 # a SLURM job may wait in the queue for a while
    done
    exec 3<"$SUB/progress.log" || exec 3<"$SUB/finished.log" || {
      printf 'runner-failed\tit did not start (see %s/runner.log)\n' "$SUB"
      exit 0
    }
    tick=0
    while :; do
      cat <&3
      # now and then a line repx ignores: once nobody follows, writing it ends this loop
      (((tick += 1) % 25)) || printf 'alive\n'
      if [[ -e $SUB/finished.log ]]; then
        cat <&3
        exit 0
      fi
      if ((tick % 25 == 0)) && ! runner_alive "$pid" && [[ ! -e $SUB/finished.log ]]; then
        printf 'runner-failed\tkilled\n'
        exit 0
      fi
      sleep 0.2
    done
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
  live)
    # the submissions under ROOT whose runner may still run (no finished.log); with job ids
    # on stdin (one a line), only those that still have to finish one of them: a job of
    # their plan that their progress log does not report finished or blocked yet
    ROOT=$2
    declare -A wanted=()
    while IFS= read -r job; do [[ -n $job ]] && wanted[$job]=1; done
    for sub in "$ROOT"/submissions/*; do
      [[ -f $sub/pid && ! -e $sub/finished.log ]] || continue
      if ((${#wanted[@]})); then
        declare -A left=()
        while IFS=$'\t' read -r _ kind id _; do
          [[ $kind == J && -n ${wanted[$id]:-} ]] && left[$id]=1
        done <"$sub/nodes.tsv"
        if ((${#left[@]})) && [[ -f $sub/progress.log ]]; then
          while IFS=$'\t' read -r kind id _; do
            [[ $kind == finished || $kind == blocked ]] && unset "left[$id]"
          done <"$sub/progress.log"
        fi
        ((${#left[@]})) || continue
        unset left
      fi
      printf '%s\n' "${sub##*/}"
    done
    exit 0
    ;;
  scatter)
    SUB=$2
    read_plan
    SG_JOB=${ID[$3]}
    SG_PARAMS=${PARAMS[$3]}
    WORK=$4
    trap 'SG_STOP=$((SG_STOP + 1))' TERM INT HUP
    sg_run "$SUB/scatter/$3"
    ;;
  work-items)
    # the work items of file $2, one a line as a branch's work_item.json holds it (tests)
    exec jq -r -n --rawfile t "$2" "$WORK_ITEMS"
    ;;
  cancel)
    SUB=$2
    read -r pid <"$SUB/pid" || exit 0
    [[ -e $SUB/finished.log ]] && exit 0
    if [[ $pid == slurm:* ]]; then
      # SLURM signals the batch job (the runner records its jobs interrupted); one that had
      # not started yet never writes finished.log: the summary says nothing ran
      scancel "${pid#slurm:}" || exit 1
      for ((tick = 0; tick < 300; tick++)); do
        [[ -e $SUB/finished.log ]] && exit 0
        slurm_alive "${pid#slurm:}" || break
        sleep 0.2
      done
      if [[ ! -e $SUB/finished.log && ! -e $SUB/progress.log ]]; then
        n=0
        while IFS=$'\t' read -r _ kind _; do [[ $kind == J ]] && n=$((n + 1)); done <"$SUB/nodes.tsv"
        printf 'summary\t0\t0\t0\t%s\t1\n' "$n" >"$SUB/finished.log"
      fi
      exit 0
    fi
    runs_sub "$pid" "$SUB" || exit 0 # ended (killed -9?): the pid may be anyone's now
    kill -TERM "$pid" 2>/dev/null || exit 0
    # it stops its jobs and records them; one that does not end within 30 s is killed
    # (bwrap --die-with-parent ends their sandboxes; the next run removes what is left)
    for ((tick = 0; tick < 150; tick++)); do
      runs_sub "$pid" "$SUB" || exit 0
      sleep 0.2
    done
    runs_sub "$pid" "$SUB" && kill -KILL "$pid" 2>/dev/null
    exit 0
    ;;
  *)
    printf 'usage: runner.sh start SUB | run SUB | snapshot BASE | log … | live ROOT | cancel SUB\n' >&2
    exit 2
    ;;
esac
