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
#   --arg allowed "a b"                   names (or absolute paths) never to report
# Output: TSV rows `kind line col text`, ordered by position, each (kind, text) once:
#   cmd     a command name looked up on PATH (builtins, keywords, functions defined anywhere
#           in the script and allowed names are left out)
#   path    a program run by an absolute path outside /nix/store and /tmp
#   source  a file sourced (`source`/`.`) by an absolute path outside /nix/store and /tmp
# Words that are not plain text (`$cmd`, `"${tools[0]}"`, `$(which x)`) cannot be resolved
# here and are skipped, unless they start with a literal absolute path (`/opt/$v/bin/x`).

def builtins:
  [ ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command",
    "compgen", "complete", "compopt", "continue", "declare", "dirs", "disown", "echo", "enable",
    "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "help", "history",
    "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read",
    "readarray", "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test",
    "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
    # keywords, in case a quoted or escaped one reaches command position
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "time", "{", "}", "!", "[[", "]]", "coproc" ];

# Text of an unquoted literal: a backslash quotes the next character.
def unquote: if test("\\\\") then gsub("\\\\(?<c>(.|\n))"; .c) else . end;
# Inside double quotes a backslash only quotes $ ` " \ and newline.
def dqunquote: if test("\\\\") then gsub("\\\\(?<c>[$`\"\\\\\n])"; .c) else . end;

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

# A word as {t: its text or null, p: its literal prefix, line, col, off}.
def word:
  [ .Parts[] | parttext ] as $parts
  | {
      t: (if any($parts[]; . == null) then null else $parts | join("") end),
      p: (.Parts | litprefix),
      line: .Pos.Line, col: .Pos.Col, off: .Pos.Offset
    };

def member($list): . as $x | any($list[]; . == $x);

# Index of the first word at or after $i that is not an option: `--` ends the options, a
# short option in $s or a long one in $l takes the next word as its argument unless the value
# is attached (`-n1`, `-I{}`, `--max-args=1`). A word that is not plain text ends them too.
def skipopts($w; $i; $s; $l):
  if $i >= ($w | length) then $i
  else $w[$i].t as $t
  | if $t == null then $i
    elif $t == "--" then $i + 1
    elif $t == "-" then skipopts($w; $i + 1; $s; $l)
    elif $t | startswith("--") then
      if ($t | contains("=") | not) and ($t | member($l)) then skipopts($w; $i + 2; $s; $l)
      else skipopts($w; $i + 1; $s; $l) end
    elif ($t | startswith("-")) and ($t | length) > 1 then
      ($t[1:] | split("")) as $cs
      | ([ range(0; $cs | length) | select($cs[.] | member($s)) ] | first) as $k
      | if $k != null and $k == ($cs | length) - 1 then skipopts($w; $i + 2; $s; $l)
        else skipopts($w; $i + 1; $s; $l) end
    else $i end
  end;

def isassign: test("^[A-Za-z_][A-Za-z0-9_]*=");
def firstnonassign($w; $i):
  if $i < ($w | length) and ($w[$i].p | isassign) then firstnonassign($w; $i + 1) else $i end;

# The index of the command run by wrapper $n at word $i (nothing when it runs none).
def wrapped($w; $i; $n):
  if $n == "env" then
    firstnonassign($w; skipopts($w; $i + 1; ["u", "C", "S"]; ["--unset", "--chdir", "--split-string"]))
  elif $n == "xargs" then
    skipopts($w; $i + 1; ["a", "d", "E", "I", "L", "n", "P", "s"];
      ["--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars",
       "--process-slot-var", "--max-lines", "--replace", "--eof"])
  elif $n == "nice" then skipopts($w; $i + 1; ["n"]; ["--adjustment"])
  elif $n == "timeout" then skipopts($w; $i + 1; ["s", "k"]; ["--signal", "--kill-after"]) + 1
  elif $n == "nohup" or $n == "setsid" then skipopts($w; $i + 1; []; [])
  elif $n == "stdbuf" then skipopts($w; $i + 1; ["i", "o", "e"]; ["--input", "--output", "--error"])
  elif $n == "exec" then skipopts($w; $i + 1; ["a"]; [])
  elif $n == "time" then skipopts($w; $i + 1; ["f", "o"]; ["--format", "--output"])
  elif $n == "command" then
    skipopts($w; $i + 1; []; []) as $j
    # `command -v x` / `-V` only looks x up.
    | if any($w[$i + 1:$j][]; .t != null and (.t | test("^-[pvV]*[vV]"))) then empty else $j end
  elif $n == "find" then
    range($i + 1; $w | length) as $k
    | select($w[$k].t | member(["-exec", "-execdir", "-ok", "-okdir"])) | $k + 1
  else empty end;

def hostpath: startswith("/") and (startswith("/nix/store/") or startswith("/tmp/") | not);

# Records for the command at word $i of $w and for the commands it wraps.
def at($w; $i):
  if $i >= ($w | length) then empty
  else $w[$i] as $x
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
           $w[$i + 1] | select(.p | hostpath) | . + {kind: "source", text: (.t // (.p + "..."))}
         else empty end),
        at($w; wrapped($w; $i; $n))
      end
    end
  end;

. as $root
| ([ $root | .. | objects | select(.Type == "FuncDecl") | .Name.Value ] + ($allowed | split(" "))
   + builtins) as $local
| [ $root | .. | objects | select(.Type == "CallExpr") | [ .Args[]? | word ] as $w | at($w; 0)
    | select(.line >= $first and ($last < 0 or .line <= $last))
    | select(.text | member($local) | not)
    | select(.kind != "cmd" or (.text | test("[*?\\[{}~=]|^-|^$") | not)) ]
| sort_by(.off)
| reduce .[] as $r ({seen: {}, rows: []};
    ($r.kind + " " + $r.text) as $key
    | if .seen[$key] then . else .seen[$key] = true | .rows += [$r] end)
| .rows[]
| [.kind, .line, .col, .text] | @tsv
