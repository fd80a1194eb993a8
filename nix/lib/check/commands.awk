# commands.awk: list the external commands a bash script would run.
#
# Runs under busybox awk inside the Nix build sandbox, so it sticks to POSIX awk
# (no gawk extensions).  The script text arrives already normalized by
# `bash --pretty-print` (comments gone, continuations joined, compound commands
# laid out one keyword per line), which keeps this scanner small: it only needs
# to understand quoting and command position, not the whole bash grammar.
#
# Input (environment, so that no awk -v escape processing mangles the text):
#   REPX_PRE_NORM          normalized generated preamble; only the functions it
#                          defines are used (they are local, not dependencies)
#   REPX_BODY_NORM         normalized user body; its commands are reported
#   REPX_ALLOWED_COMMANDS  space-separated names never to report
# Output: one command name per line, in order of first use, without duplicates,
#   minus builtins, keywords, functions defined anywhere, allowed names and
#   anything that is not a plain name (paths, globs, expansions).
#
# Design: a character scanner with a stack of frames, indexed by depth D.
#   C  top level of one scan()        S  $( ), <( ), >( ) or a ( ) subshell
#   R  array literal a=( ... )        Q  "..."   H  unquoted here-document body
#   P  ${ ... }                       A  $(( )) or (( ))
# C, S and R are "word frames": they split words and track whether the next
# word is in command position (CP).  Backquoted text and here-document bodies
# are scanned by a recursive scan() call on the extracted text.

BEGIN {
    split(". : [ alias bg bind break builtin caller cd command compgen complete " \
          "compopt continue declare dirs disown echo enable eval exec exit export " \
          "false fc fg getopts hash help history jobs kill let local logout mapfile " \
          "popd printf pushd pwd read readarray readonly return set shift shopt " \
          "source suspend test times trap true type typeset ulimit umask unalias " \
          "unset wait", tmp, " ")
    for (k in tmp) BUILTIN[tmp[k]] = 1
    split("if then else elif fi case esac for select while until do done in " \
          "function time { } ! [[ ]] coproc", tmp, " ")
    for (k in tmp) KEYWORD[tmp[k]] = 1
    split(ENVIRON["REPX_ALLOWED_COMMANDS"], tmp, " ")
    for (k in tmp) ALLOWED[tmp[k]] = 1

    # Commands that run another command given as an argument.  OPTARG lists the
    # short options taking a separate argument, LONGARG the long ones (when not
    # written as --opt=value), so that the wrapped command can be found.
    split("env xargs nice nohup timeout exec command builtin setsid stdbuf find", tmp, " ")
    for (k in tmp) WRAPPER[tmp[k]] = 1
    optargs("env", "u C S", "--unset --chdir --split-string")
    optargs("xargs", "a d E I L n P s",
            "--arg-file --delimiter --max-args --max-procs --max-chars --process-slot-var")
    optargs("nice", "n", "--adjustment")
    optargs("timeout", "s k", "--signal --kill-after")
    optargs("exec", "a", "")
    optargs("stdbuf", "i o e", "--input --output --error")

    D = 0; NCAND = 0; HQN = 0
    EMIT = 0; scan(ENVIRON["REPX_PRE_NORM"], "C")
    EMIT = 1; scan(ENVIRON["REPX_BODY_NORM"], "C")

    for (k = 1; k <= NCAND; k++) {
        name = CAND[k]
        if ((name in FUNCS) || (name in BUILTIN) || (name in KEYWORD) \
            || (name in ALLOWED)) continue
        # Paths, globs, brace expansions and tilde words are not PATH look-ups.
        if (name ~ /[\/*?[{}~=]/ || name ~ /^-/ || name == "") continue
        print name
    }
    exit 0
}

function optargs(cmd, shorts, longs,    a, k) {
    split(shorts, a, " "); for (k in a) OPTARG[cmd, a[k]] = 1
    split(longs, a, " "); for (k in a) LONGARG[cmd, a[k]] = 1
}

function push(t, kind) {
    D++
    T[D] = t; K[D] = kind
    W[D] = ""; WN[D] = 0; WX[D] = 0; WQ[D] = 0; WF[D] = 0
    CP[D] = 1; PW[D] = ""; PS[D] = ""; TD[D] = 0; LW[D] = ""; NA[D] = 0
    SK[D] = 0; TS[D] = 0; FN[D] = 0; FDO[D] = 0; FDP[D] = 0; RD[D] = 0; HD[D] = 0
    CS[D] = 0; CO[D] = 0; BD[D] = 0; PD[D] = 0; OW[D] = 0; PQ[D] = 0
}

function isword(d) { return T[d] == "C" || T[d] == "S" || T[d] == "R" }

# Close frame D (a ")" or the end of the text), telling the parent what ended.
function pop() {
    if (isword(D)) endword(D)
    if (T[D] == "S" && K[D] == "sub") CP[D - 1] = 0
    if (T[D] == "A" && K[D] == "cmd") { CP[D - 1] = 0; SK[D - 1] = 0 }
    D--
}

# The word in frame d now contains an expansion or quote: remember where the
# first one happened (assignments are recognised on the literal prefix only).
function mark(d, expansion) {
    if (d == 0) return
    WN[d] = 1
    if (expansion) WX[d] = 1; else WQ[d] = 1
    if (!WF[d]) WF[d] = length(W[d]) + 1
}

function endword(d) {
    if (!WN[d]) return
    handleword(d, W[d], WX[d], WQ[d], WF[d])
    W[d] = ""; WN[d] = 0; WX[d] = 0; WQ[d] = 0; WF[d] = 0
}

function casemode(d) { return CS[d] > 0 ? CM[d, CS[d]] : "" }

function addcand(name) {
    if (EMIT && !(name in SEEN)) { SEEN[name] = 1; CAND[++NCAND] = name }
}

function isassign(w, f,    name) {
    if (!match(w, /^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=/)) return 0
    name = w; sub(/[[+=].*/, "", name)
    return f == 0 || f > length(name)
}

# x: the word contains an expansion; q: it contains quoting; f: position of
# the first expansion or quote (0 when none).
function handleword(d, w, x, q, f,    cm) {
    if (T[d] == "R") return
    SK[d] = 0
    if (TS[d]) { if (w == "]]" && !x && !q) { TS[d] = 0; CP[d] = 0 } return }
    if (HD[d]) { HQD[++HQN] = w; HQQ[HQN] = (q || x); HQT[HQN] = (HD[d] == 2); HD[d] = 0; return }
    if (RD[d]) { RD[d] = 0; return }
    cm = casemode(d)
    if (cm == "w") { if (w == "in" && !x && !q) CM[d, CS[d]] = "p"; return }
    if (cm == "p") { if (w == "esac" && !x && !q) { CS[d]--; CP[d] = 0 } return }
    if (FN[d]) { FUNCS[w] = 1; FN[d] = 0; CP[d] = 1; FDO[d] = 1; return }
    FDO[d] = 0
    # bash --pretty-print always names a coprocess: `coproc NAME command`.
    if (CO[d]) { CO[d] = 0; CP[d] = 1; return }
    if (PW[d] != "") { if (!wrapperarg(d, w, x, f)) cmdword(d, w, x); return }
    if (!CP[d]) { NA[d]++; return }
    if (!x && !q) {
        if (isassign(w, f)) return
        if (w in KEYWORD) { keyword(d, w); return }
        if (substr(w, 1, 1) == "-") return          # `time -p`
    } else if (isassign(w, f)) return
    cmdword(d, w, x)
}

function keyword(d, w) {
    CP[d] = 1
    # The loop variable and word list are not commands (CP = 0 until the
    # separator); SK lets a `((` right after `for` open its arithmetic header.
    if (w == "for" || w == "select") { SK[d] = 1; CP[d] = 0 }
    else if (w == "case") { CS[d]++; CM[d, CS[d]] = "w"; CP[d] = 0 }
    else if (w == "[[") { TS[d] = 1; CP[d] = 0 }
    else if (w == "function") { FN[d] = 1; CP[d] = 0 }
    else if (w == "esac") { if (CS[d] > 0) CS[d]--; CP[d] = 0 }
    else if (w == "fi" || w == "done" || w == "}") CP[d] = 0
    else if (w == "coproc") CO[d] = 1
}

function cmdword(d, w, x,    back) {
    back = (PW[d] == "find")
    CP[d] = 0; NA[d] = 0; LW[d] = ""; PW[d] = ""; PS[d] = ""; TD[d] = 0
    if (back) { PW[d] = "find"; PS[d] = "opt" }     # more -exec may follow
    if (x) return                                   # `$cmd ...`: unknown name
    LW[d] = w
    addcand(w)
    if (w in WRAPPER) { PW[d] = w; PS[d] = "opt" }
}

# Called for each word after a wrapper command; returns 1 when the word is an
# option or argument of the wrapper, 0 when it is the command it runs.
function wrapperarg(d, w, x, f,    p, k, o, n) {
    p = PW[d]
    NA[d]++
    if (PS[d] == "arg") { PS[d] = "opt"; return 1 }
    if (PS[d] == "cmd") return 0
    if (p == "builtin") { PW[d] = ""; return 1 }
    if (p == "find") {
        if (!x && w ~ /^-(exec|execdir|ok|okdir)$/) PS[d] = "cmd"
        return 1
    }
    if (!x && PS[d] == "opt" && substr(w, 1, 1) == "-") {
        if (w == "--") { PS[d] = "end"; return 1 }
        if (w == "-") return 1                      # env -
        if (p == "command" && w ~ /^-[pvV]*[vV]/) { PW[d] = ""; return 1 }  # a lookup
        if (substr(w, 1, 2) == "--") {
            if (index(w, "=") == 0 && ((p, w) in LONGARG)) PS[d] = "arg"
            return 1
        }
        n = length(w)
        for (k = 2; k <= n; k++) {
            o = substr(w, k, 1)
            if ((p, o) in OPTARG) { if (k == n) PS[d] = "arg"; break }
        }
        return 1
    }
    if (p == "env" && (x ? isassign(w, f) : w ~ /^[^=]+=/)) return 1
    if (p == "timeout" && !TD[d]) { TD[d] = 1; return 1 }   # the duration
    return 0
}

function op(d, o,    cm) {
    if (T[d] == "R") { if (o == ")") pop(); return }
    if (TS[d]) return                               # && || ( ) < > inside [[ ]]
    cm = casemode(d)
    if (o == "\n") {
        if (cm == "w" || cm == "p") return
        CP[d] = 1; PW[d] = ""; SK[d] = 0; LW[d] = ""; CO[d] = 0; RD[d] = 0
        return
    }
    if (o == ";" || o == "&" || o == "&&" || o == "||" || o == "|" || o == "|&") {
        if (cm == "p") return                       # `a | b)` pattern list
        CP[d] = 1; PW[d] = ""; SK[d] = 0; LW[d] = ""; CO[d] = 0; RD[d] = 0
        return
    }
    if (o == ";;" || o == ";&" || o == ";;&") {
        if (CS[d] > 0) CM[d, CS[d]] = "p"
        CP[d] = 0; PW[d] = ""; LW[d] = ""
        return
    }
    if (o == "(") {
        if (cm == "p") return                       # optional `(` before a pattern
        if (FDO[d]) { FDO[d] = 0; FDP[d] = 1; return }
        if (!CP[d] && LW[d] != "" && NA[d] == 0) {
            # `name () compound-command`: a function definition, not a call.
            FUNCS[LW[d]] = 1; FDP[d] = 1; PW[d] = ""; LW[d] = ""
            return
        }
        if (CP[d]) push("S", "sub")
        return
    }
    if (o == ")") {
        if (cm == "p") { CM[d, CS[d]] = "b"; CP[d] = 1; return }
        if (FDP[d]) { FDP[d] = 0; CP[d] = 1; return }
        if (T[d] == "S") pop()
        return
    }
}

# Index of the closing quote of an ANSI-C $'...' string opened at i (the $).
function ansic(s, i,    n, c) {
    n = length(s)
    for (i += 2; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\\") i++
        else if (c == "'") return i
    }
    return n
}

# Scan the backquoted command starting at i (the opening `); returns the
# index of the closing backquote.
function backquote(s, i,    n, c, c2, body) {
    n = length(s); body = ""
    for (i++; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\\") {
            c2 = substr(s, i + 1, 1)
            body = body ((c2 == "`" || c2 == "\\" || c2 == "$") ? c2 : c c2)
            i++
            continue
        }
        if (c == "`") break
        body = body c
    }
    scan(body, "C")
    return i
}

# Here-document bodies follow the line just ended at i (the newline).  Quoted
# delimiters make the body plain text; otherwise $( ) and ` ` in it run.
# Returns the index of the newline that ends the last delimiter line.
function heredocs(s, i,    n, k, m, dl, dq, dt, pos, e, line, cmp, body) {
    n = length(s); m = HQN
    for (k = 1; k <= m; k++) { dl[k] = HQD[k]; dq[k] = HQQ[k]; dt[k] = HQT[k] }
    HQN = 0
    pos = i + 1
    for (k = 1; k <= m; k++) {
        body = ""
        while (pos <= n) {
            e = index(substr(s, pos), "\n")
            line = e ? substr(s, pos, e - 1) : substr(s, pos)
            pos = e ? pos + e : n + 1
            cmp = line
            if (dt[k]) sub(/^\t+/, "", cmp)
            if (cmp == dl[k]) break
            body = body line "\n"
        }
        if (!dq[k]) scan(body, "H")
    }
    return pos - 1
}

# Handle "$" at i in any frame; returns the index of the last character used.
function dollar(s, i, owner,    c2) {
    c2 = substr(s, i + 1, 1)
    if (c2 == "(") {
        mark(owner, 1)
        if (substr(s, i + 2, 1) == "(") { push("A", "exp"); return i + 2 }
        push("S", "cs"); return i + 1
    }
    if (c2 == "{") { mark(owner, 1); push("P", ""); PQ[D] = !isword(D - 1) && (T[D - 1] != "P" || PQ[D - 1]); return i + 1 }
    if (c2 == "'" && isword(D)) { mark(owner, 1); return ansic(s, i) }
    if (c2 == "\"" && isword(D)) { mark(owner, 1); push("Q", ""); OW[D] = 0; return i + 1 }
    if (c2 ~ /[A-Za-z0-9_@*#?$!-]/) mark(owner, 1)
    if (owner) W[owner] = W[owner] "$"
    return i
}

function scan(s, ftype,    base, n, i, c, c2, c3, t, o, j, depth) {
    base = D
    push(ftype, "")
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        t = T[D]

        if (t == "Q" || t == "H") {
            if (c == "\\") {
                c2 = substr(s, i + 1, 1)
                i++
                if (c2 == "\n") continue
                if (OW[D]) W[OW[D]] = W[OW[D]] ((c2 == "$" || c2 == "`" || c2 == "\\" || (c2 == "\"" && t == "Q")) ? c2 : c c2)
                continue
            }
            if (c == "\"" && t == "Q") { D--; continue }
            if (c == "$") { i = dollar(s, i, OW[D]); continue }
            if (c == "`") { mark(OW[D], 1); i = backquote(s, i); continue }
            if (OW[D]) W[OW[D]] = W[OW[D]] c
            continue
        }

        if (t == "P" || t == "A") {
            if (c == "\\") { i++; continue }
            if (c == "$") { i = dollar(s, i, 0); continue }
            if (c == "`") { i = backquote(s, i); continue }
            if (c == "\"") { push("Q", ""); continue }
            if (c == "'" && t == "P" && !PQ[D]) {
                j = index(substr(s, i + 1), "'")
                i = j ? i + j : n
                continue
            }
            if (t == "P") {
                if (c == "{") BD[D]++
                else if (c == "}") { if (BD[D] > 0) BD[D]--; else D-- }
            } else {
                if (c == "(") PD[D]++
                else if (c == ")") {
                    if (PD[D] > 0) PD[D]--
                    else { if (substr(s, i + 1, 1) == ")") i++; pop() }
                }
            }
            continue
        }

        # Word frames: C, S, R.
        if (c == " " || c == "\t") { endword(D); continue }
        if (c == "\n") {
            endword(D); op(D, "\n")
            if (HQN) i = heredocs(s, i)
            continue
        }
        if (c == "\\") {
            c2 = substr(s, i + 1, 1)
            i++
            if (c2 == "\n") continue                # line continuation
            mark(D, 0); W[D] = W[D] c2
            continue
        }
        if (c == "'") {
            j = index(substr(s, i + 1), "'")
            if (!j) j = n - i + 1
            mark(D, 0); W[D] = W[D] substr(s, i + 1, j - 1)
            i += j
            continue
        }
        if (c == "\"") { mark(D, 0); push("Q", ""); OW[D] = D - 1; continue }
        if (c == "$") { i = dollar(s, i, D); continue }
        if (c == "`") { mark(D, 1); i = backquote(s, i); continue }
        if (c == "#" && !WN[D]) {
            j = index(substr(s, i), "\n")
            i = j ? i + j - 2 : n
            continue
        }
        if (c == "<" || c == ">") {
            if (substr(s, i + 1, 1) == "(" && !TS[D]) {  # process substitution
                mark(D, 1); push("S", "cs"); i++
                continue
            }
            if (TS[D]) { endword(D); continue }        # [[ a < b ]]
            # A digit or {var} word glued to the operator is its fd, not a word.
            if (WN[D] && !WX[D] && !WQ[D] && W[D] ~ /^([0-9]+|\{[A-Za-z_][A-Za-z0-9_]*\})$/) {
                W[D] = ""; WN[D] = 0
            } else endword(D)
            c2 = substr(s, i + 1, 1); c3 = substr(s, i + 2, 1)
            if (c == "<" && c2 == "<") {
                if (c3 == "<") { RD[D] = 1; i += 2 }
                else if (c3 == "-") { HD[D] = 2; i += 2 }
                else { HD[D] = 1; i++ }
            } else {
                if (c2 == ">" || c2 == "&" || c2 == "|" || (c == "<" && c2 == ">")) i++
                RD[D] = 1
            }
            # `>&2`, `2>&1`: a digit or "-" target is not a file word, but
            # skipping it as a word does no harm either.
            continue
        }
        if (c == "&") {
            c2 = substr(s, i + 1, 1)
            if (c2 == ">") {                        # &> and &>> redirect
                endword(D); i++
                if (substr(s, i + 1, 1) == ">") i++
                RD[D] = 1
                continue
            }
            endword(D)
            if (c2 == "&") { i++; op(D, "&&") } else op(D, "&")
            continue
        }
        if (c == "|") {
            endword(D)
            c2 = substr(s, i + 1, 1)
            if (c2 == "|") { i++; op(D, "||") }
            else if (c2 == "&") { i++; op(D, "|&") }
            else op(D, "|")
            continue
        }
        if (c == ";") {
            endword(D)
            c2 = substr(s, i + 1, 1)
            if (c2 == ";") {
                i++
                if (substr(s, i + 1, 1) == "&") { i++; op(D, ";;&") } else op(D, ";;")
            } else if (c2 == "&") { i++; op(D, ";&") }
            else op(D, ";")
            continue
        }
        if (c == "(") {
            if (WN[D] && !TS[D] && isassign(W[D], WF[D]) && substr(W[D], length(W[D])) == "=") {
                push("R", "")                           # a=( ... )
                continue
            }
            if (WN[D] && substr(W[D], length(W[D])) ~ /[?*+@!]/) {
                # extglob group such as @(a|b): part of the word, never a name.
                mark(D, 1); depth = 0
                for (; i <= n; i++) {
                    c = substr(s, i, 1)
                    if (c == "(") depth++
                    else if (c == ")" && --depth == 0) break
                }
                continue
            }
            endword(D)
            if (substr(s, i + 1, 1) == "(" && (CP[D] || SK[D]) && !TS[D] && casemode(D) != "p") {
                push("A", "cmd"); i++                   # (( arithmetic ))
                continue
            }
            op(D, "(")
            continue
        }
        if (c == ")") { endword(D); op(D, ")"); continue }
        WN[D] = 1; W[D] = W[D] c
    }
    # End of text: flush the last word, close anything left open.
    while (D > base) {
        if (isword(D)) endword(D)
        D--
    }
}
