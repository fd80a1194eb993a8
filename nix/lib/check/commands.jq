# commands.jq: the programs a bash script runs, from the syntax tree `shfmt --to-json` prints.
#
# Runs under jq 1.6 inside the Nix build sandbox. shfmt has done the parsing (quoting,
# here-documents, `$( )`, backquotes, compound commands, `[[ ]]`, `(( ))`, case patterns,
# assignments and redirections are all separate node types), so this only has to look at the
# first word of every simple command (`CallExpr`), wherever it is in the tree, and at the
# command a wrapper (`env`, `xargs`, `timeout`, `exec`, `command`, `find -exec`, ...) runs.
#
# Arguments:
#   --argjson first N, --argjson last N   script lines whose commands are reported (the
#                                         user's body; `last` < 0: to the end)
#   --arg allowed "a b"                   names (or absolute paths) never to report; a body
#                                         comment `# repx: allow a b` adds to them
# Output: TSV rows `kind line col text`, ordered by position, each (kind, text) once:
#   cmd     a command name looked up on PATH (builtins, keywords, functions defined anywhere
#           in the script and allowed names are left out)
#   path    a program run by an absolute path outside /nix/store and /tmp
#   source  a file sourced (`source`/`.`) by an absolute path outside /nix/store and /tmp
#   quoted  `PARAMS[x]` / `INPUTS[x]`: a reference `${PARAMS[x]}` (what `${parameters.x}`
#           becomes) inside single quotes, where bash does not expand it (one row per line)
# Words that are not plain text (`$cmd`, `"${tools[0]}"`, `$(which x)`) cannot be resolved
# here and are skipped, unless they start with a literal absolute path (`/opt/$v/bin/x`).

# Builtins and keywords (keywords in case a quoted or escaped one reaches command position).
def builtins:
  ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue "
  + "declare dirs disown echo enable eval exec exit export false fc fg getopts hash help "
  + "history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly "
  + "return set shift shopt source suspend test times trap true type typeset ulimit umask "
  + "unalias unset wait if then else elif fi case esac for select while until do done in "
  + "function time { } ! [[ ]] coproc"
  | split(" ");

# Text of an unquoted literal: a backslash quotes the next character.
def unquote: if index("\\") then gsub("\\\\(?<c>(.|\n))"; .c) else . end;
# Inside double quotes a backslash only quotes $ ` " \ and newline.
def dqunquote: if index("\\") then gsub("\\\\(?<c>[$`\"\\\\\n])"; .c) else . end;

# The literal text of one word part, or null when it expands to something unknown.
def parttext:
  if .Type == "Lit" then .Value | unquote
  elif .Type == "SglQuoted" then (if .Dollar then null else .Value end)
  elif .Type == "DblQuoted" and (.Dollar | not) then
    [ .Parts[]? | if .Type == "Lit" then .Value | dqunquote else null end ]
    | if any(.[]; . == null) then null else join("") end
  else null end;

# The literal text that an array of word parts starts with ("/opt/" for "/opt/$v/x").
def litprefix:
  reduce .[] as $p ({s: "", open: true};
    if .open | not then .
    else ($p | parttext) as $t
    | if $t != null then .s += $t
      elif $p.Type == "DblQuoted" and ($p.Dollar | not) then .s += ($p.Parts | litprefix) | .open = false
      else .open = false end
    end)
  | .s;

# The text of a word (a shfmt Word node), or null when it is not plain text.
def wt: [ .Parts[] | parttext ] | if any(.[]; . == null) then null else join("") end;

# A word as {t: its text or null, p: its literal prefix, line, col, off}.
def word: { t: wt, p: (.Parts | litprefix), line: .Pos.Line, col: .Pos.Col, off: .Pos.Offset };

# The functions below take $w, the Args (Word nodes) of one simple command, and compute the
# text of only the words they look at: most commands need just their first word.

# Wrappers: commands that run the command given in their arguments, with their options that
# take the next word as their value (s: short option letters, l: long options).
def wrappers:
  { "env": { "s": "uCS", "l": ["--unset", "--chdir", "--split-string"] },
    "xargs": { "s": "adEILnPs", "l": ["--arg-file", "--delimiter", "--max-args", "--max-procs",
      "--max-chars", "--process-slot-var", "--max-lines", "--replace", "--eof"] },
    "nice": { "s": "n", "l": ["--adjustment"] },
    "timeout": { "s": "sk", "l": ["--signal", "--kill-after"] },
    "nohup": { "s": "", "l": [] }, "setsid": { "s": "", "l": [] },
    "stdbuf": { "s": "ioe", "l": ["--input", "--output", "--error"] },
    "exec": { "s": "a", "l": [] },
    "time": { "s": "fo", "l": ["--format", "--output"] },
    "command": { "s": "", "l": [] },
    "find": { "s": "", "l": [] } };

# How many words the option word $t takes up (its value may be the next word); 0: $t is not
# an option (a word that is not plain text is not one either). `-n1`, `-I{}`, `--max-args=1`
# carry their value; in a cluster like `-0n` only an option letter at the end takes the next.
def optwords($t; $o):
  if $t == null or ($t | startswith("-") | not) then 0
  elif $t == "-" then 1
  elif $t | startswith("--") then
    if ($t | contains("=") | not) and any($o.l[]; . == $t) then 2 else 1 end
  elif $o.s != "" and ($t | test("^-[^" + $o.s + "]*[" + $o.s + "]$")) then 2
  else 1 end;

# Index of the first word at or after $i that is not an option of wrapper $o (`--` ends them).
def skipopts($w; $i; $o):
  if $i >= ($w | length) then $i
  else ($w[$i] | wt) as $t
  | if $t == "--" then $i + 1
    else optwords($t; $o) as $n | if $n == 0 then $i else skipopts($w; $i + $n; $o) end
    end
  end;

def isassign: test("^[A-Za-z_][A-Za-z0-9_]*=");
def firstnonassign($w; $i):
  if $i < ($w | length) and ($w[$i].Parts | litprefix | isassign) then firstnonassign($w; $i + 1)
  else $i end;

# The index of the command run by wrapper $n at word $i (nothing when it runs none).
def wrapped($w; $i; $n):
  wrappers[$n] as $o
  | if $o == null then empty
    elif $n == "find" then
      range($i + 1; $w | length) as $k
      | select($w[$k] | wt | . == "-exec" or . == "-execdir" or . == "-ok" or . == "-okdir")
      | $k + 1
    else skipopts($w; $i + 1; $o) as $j
    | if $n == "env" then firstnonassign($w; $j)
      elif $n == "timeout" then $j + 1                 # the duration
      # `command -v x` / `-V` only looks x up.
      elif $n == "command" and any($w[$i + 1:$j][] | wt; . != null and test("^-[pvV]*[vV]")) then
        empty
      else $j end
    end;

def hostpath: startswith("/") and (startswith("/nix/store/") or startswith("/tmp/") | not);

# Records for the command at word $i of $w and for the commands it wraps.
def at($w; $i):
  if $i >= ($w | length) then empty
  else ($w[$i] | word) as $x
  | if $x.t == null then
      if $x.p | hostpath then $x + {kind: "path", text: ($x.p + "...")} else empty end
    else $x.t as $n
    | if $n | startswith("/") then
        (if $n | hostpath then $x + {kind: "path", text: $n} else empty end),
        # `/usr/bin/env python3`: also what the wrapper runs.
        at($w; wrapped($w; $i; $n | split("/") | last))
      elif $n | contains("/") then empty            # ./run.sh, ../bin/x: a file, not PATH
      else
        $x + {kind: "cmd", text: $n},
        (if ($n == "source" or $n == ".") and $i + 1 < ($w | length) then
           $w[$i + 1] | word | select(.p | hostpath) | . + {kind: "source", text: (.t // (.p + "..."))}
         else empty end),
        at($w; wrapped($w; $i; $n))
      end
    end
  end;

def inbody: . >= $first and ($last < 0 or . <= $last);

# `# repx: allow NAME...` in the body: names or paths the author vouches for (a host program
# used on purpose, with a target that mounts host paths).
def directives:
  .Comments[] | select(.Hash.Line | inbody) | .Text
  | capture("^\\s*repx:\\s*allow\\s+(?<w>.*)$")? | .w | splits("\\s+") | select(. != "");

# The job's parameter and input references (`${PARAMS[x]}`, `${INPUTS[x]}`: what Nix makes of
# `${parameters.x}` / `${inputs.x}`) in the text of a single-quoted string, with their place.
def quotedrefs:
  (.Value // "") as $v | .Pos as $p
  | ($v | [ match("\\$\\{(?<a>PARAMS|INPUTS)\\[(?<k>[^]]*)\\]\\}"; "g") ][])
  | . as $m
  | ($v[0:$m.offset] | split("\n")) as $before
  | { line: ($p.Line + ($before | length) - 1),
      col: (if ($before | length) == 1 then $p.Col + 1 + $m.offset else ($before | last | length) + 1 end),
      off: ($p.Offset + 1 + $m.offset),
      kind: "quoted",
      text: ($m.captures[0].string + "[" + $m.captures[1].string + "]") };

[ .. | objects | select(.Type == "CallExpr" or .Type == "FuncDecl" or .Comments != null) ]
  as $nodes
| ([ $nodes[] | select(.Type == "FuncDecl") | .Name.Value ]
   + [ $nodes[] | select(.Comments != null) | directives ]
   + ($allowed | split(" ")) + builtins
   | map({(.): true}) | add) as $local
| [ $nodes[] | select(.Type == "CallExpr" and .Pos.Line <= (if $last < 0 then infinite else $last end))
    | .Args as $w | at($w; 0)
    | select(.line | inbody)
    | select($local[.text] | not)
    | select(.kind != "cmd" or (.text | test("[*?\\[{}~=]|^-|^$") | not)) ]
  + [ .. | objects | select(.Type == "SglQuoted") | quotedrefs | select(.line | inbody) ]
| sort_by(.off)
| reduce .[] as $r ({seen: {}, rows: []};
    ($r.kind + " " + $r.text + (if $r.kind == "quoted" then " \($r.line)" else "" end)) as $key
    | if .seen[$key] then . else .seen[$key] = true | .rows += [$r] end)
| .rows[]
| [.kind, .line, .col, .text] | @tsv
