# The one grammar of a stage's scheduling hints (`resources = { … }`). The build checks
# every hint here and writes the normalised value into the lab, so a bad hint fails the
# build, never a run:
#   cpus        a whole number, 1 … 65535
#   mem         MiB: a whole number (512), or a number (up to 6 decimals) and a unit K, M,
#               G or T, binary, optionally followed by B or iB ("512M", "1.5G", "2GiB",
#               "150g"); rounded up to whole MiB; 1 MiB … 2^40 MiB      -> an integer (MiB)
#   time        minutes (30), or SLURM's "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
#               "D-HH:MM:SS" (seconds and minutes below 60, hours below 24 after a day
#               count); seconds round up to whole minutes; 1 … 10^9 minutes -> an integer
#   partition   a name, or comma-separated names ([A-Za-z0-9_][A-Za-z0-9_.+-]*)
#   sbatch_opts a list of options, each one element: "--name", "--name=value" or "-Xvalue";
#               none of the options repx sets itself (nor an abbreviation of one)
# Every number has at most 12 significant digits (so nothing below can overflow).
# src/repx/lab/hints.py is the same grammar for the Python side (and resources.toml);
# tests/unit/test_hints_agree.py runs both on one table of values.
let
  inherit (builtins)
    all
    any
    attrNames
    elemAt
    filter
    fromJSON
    genList
    head
    isBool
    isFloat
    isInt
    isList
    isString
    length
    listToAttrs
    match
    replaceStrings
    stringLength
    substring
    toJSON
    typeOf
    ;

  maxCpus = 65535;
  maxMem = 1099511627776; # MiB (2^40)
  maxMinutes = 1000000000;

  # Options repx passes to sbatch itself: a user's value would break submission or following.
  reservedLong = [ "--array" "--dependency" "--output" "--error" "--parsable" "--wrap" "--wait" "--kill-on-invalid-dep" "--test-only" ];
  reservedShort = [ "-a" "-d" "-o" "-e" "-W" ];

  # "007" -> 7; null when not digits or more than 12 significant ones.
  number = s: let m = match "0*([0-9]{1,12})" s; in if m == null then null else fromJSON (head m);

  # The value as messages show it: JSON for strings and integers, a word for the rest.
  show =
    v:
    if isString v || isInt v then toJSON v
    else if isBool v then (if v then "true" else "false")
    else if isFloat v then "a fractional number"
    else "a ${typeOf v}";

  ok = value: { inherit value; };
  bad = v: accepted: { error = "invalid value ${show v}: ${accepted}"; };
  inRange = lo: hi: n: n != null && n >= lo && n <= hi;

  cpusAccepted = "use a whole number of CPUs from 1 to ${toString maxCpus}";
  cpus = v: if isInt v && inRange 1 maxCpus v then ok v else bad v cpusAccepted;

  memAccepted = "use a whole number of MiB (512) or a size with a unit K, M, G or T (\"512M\", \"1.5G\"), from 1M to 1048576T";
  # MiB per unit; K is 1/1024 of one.
  memUnit = { K = 0; k = 0; M = 1; m = 1; G = 1024; g = 1024; T = 1048576; t = 1048576; };
  pow10 = n: if n == 0 then 1 else 10 * pow10 (n - 1);
  mem =
    v:
    let
      parts = if isString v then match "([0-9]+)(\\.([0-9]{1,6}))?(([KMGTkmgt])(iB|B|b)?)?" v else null;
      n = if parts == null then null else number (elemAt parts 0);
      fracText = if parts == null then null else elemAt parts 2;
      frac = if fracText == null then 0 else fromJSON "1${fracText}" - scale;
      scale = if fracText == null then 1 else pow10 (stringLength fracText);
      unit = if parts == null || elemAt parts 4 == null then "M" else elemAt parts 4;
      factor = memUnit.${unit};
      # n.frac units, rounded up to whole MiB, in integers (exact, as in Python)
      mib =
        if isInt v then v
        else if n == null then null
        else if factor == 0 then (n * scale + frac + scale * 1024 - 1) / (scale * 1024)
        else n * factor + (frac * factor + scale - 1) / scale;
    in
    if inRange 1 maxMem mib then ok mib else bad v memAccepted;

  timeAccepted = "use minutes (30) or \"MM:SS\", \"HH:MM:SS\", \"D-HH\", \"D-HH:MM\", \"D-HH:MM:SS\" (minutes and seconds below 60, hours below 24 after a day count), more than 0";
  # Seconds of a SLURM time string, null when it is none.
  timeSeconds =
    s:
    let
      parts = match "(([0-9]+)-)?([0-9]+)(:([0-9]+))?(:([0-9]+))?" s;
      field = i: let f = elemAt parts i; in if f == null then null else number f;
      given = i: elemAt parts i != null;
      days = field 1;
      a = field 2;
      b = field 4;
      c = field 6;
      valid = all (i: !(given i) || field i != null) [ 1 2 4 6 ];
      below = lim: x: x == null || x < lim;
    in
    if parts == null || !valid then null
    else if given 0 then
      (if below 24 a && below 60 b && below 60 c then ((days * 24 + a) * 60 + (if b == null then 0 else b)) * 60 + (if c == null then 0 else c) else null)
    else if c != null then
      (if below 60 b && below 60 c then (a * 60 + b) * 60 + c else null)
    else if b != null then
      (if below 60 b then a * 60 + b else null)
    else a * 60;
  time =
    v:
    let
      seconds = if isString v then timeSeconds v else null;
      minutes = if isInt v then v else if seconds == null then null else (seconds + 59) / 60;
    in
    if inRange 1 maxMinutes minutes then ok minutes else bad v timeAccepted;

  partitionAccepted = "use a partition name or comma-separated names ([A-Za-z0-9_.+-], not starting with . + or -)";
  partition =
    v:
    if isString v && match "[A-Za-z0-9_][A-Za-z0-9_.+-]*(,[A-Za-z0-9_][A-Za-z0-9_.+-]*)*" v != null then ok v
    else bad v partitionAccepted;

  # Why one sbatch option is refused, or null.
  optionProblem =
    o:
    let
      long = match "(--[A-Za-z][A-Za-z0-9-]*)(=.*)?" o;
      name = if long != null then head long else substring 0 2 o;
      isPrefix = r: stringLength name >= 3 && substring 0 (stringLength name) r == name;
    in
    if !(isString o) then "invalid value ${show o}: use a string such as \"--qos=long\""
    else if replaceStrings [ "\n" "\r" ] [ "" "" ] o != o then "invalid value ${show o}: an option cannot hold a line break"
    else if long == null && match "-[A-Za-z]([^ \t-].*)?" o == null then
      "invalid value ${show o}: use one option per element, its value after '=' (\"--qos=long\") or attached to a short option (\"-pshort\")"
    else if long != null && any isPrefix reservedLong then
      "invalid value ${show o}: ${head (filter isPrefix reservedLong)} is set by repx itself"
    else if long == null && builtins.elem name reservedShort then "invalid value ${show o}: ${name} is set by repx itself"
    else null;
  sbatchOpts =
    v:
    if !(isList v) then bad v "use a list of sbatch options ([ \"--qos=long\" ])"
    else
      let
        problems = filter (p: p.error != null) (genList (i: { inherit i; error = optionProblem (elemAt v i); }) (length v));
      in
      if problems == [ ] then ok v
      else { error = (head problems).error; index = (head problems).i; };

  checks = { inherit cpus mem time partition; sbatch_opts = sbatchOpts; };
in
rec {
  keys = attrNames checks;

  # { value = <normalised>; } or { error = "<what is wrong and what is accepted>"; }
  # (sbatch_opts errors also carry the `index` of the refused option).
  check = key: v: checks.${key} v;

  # A stage's `resources` (keys already checked), normalised; calls
  # `fail where "resources.<key>: …"` on the first bad hint (keys in sorted order) so the
  # message names the stage file, stage and field.
  normalise =
    fail: where: resources:
    let
      results = map (k: { name = k; value = check k resources.${k}; }) (attrNames resources);
      firstBad = filter (r: r.value ? error) results;
      field = r: "resources.${r.name}" + (if r.value ? index then "[${toString r.value.index}]" else "");
    in
    if firstBad != [ ] then fail where "${field (head firstBad)}: ${(head firstBad).value.error}"
    else listToAttrs (map (r: { inherit (r) name; value = r.value.value; }) results);
}
