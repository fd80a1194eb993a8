# Parameter helpers for run files, as RepX's `repx-lib.utils` names them:
#   range 1 3            -> [ 1 2 3 ]
#   list [ … ]           -> the values (tagged, as RepX does)
#   dirs ./d, files ./d  -> the sub-directories / files of ./d, each copied to the store
#   scan { src; match ? null; type ? "any"; }   -> entries of src whose name matches
#   env { K = "v"; }     -> "export K=v" (a string for a stage to run)
#   sanitize ./p         -> ./p copied to the store (a string); anything else unchanged
#   zip { a = [ … ]; b = [ … ]; } -> one axis whose lists advance together
# Directory listings are read at evaluation time from the source tree (no build needed);
# a directory that only exists as a build output is read through the store.
{ util }:
let
  inherit (builtins) attrNames concatStringsSep filter isList isPath length match readDir;
  inherit (util) fail showList;

  tagged = values: { _repx_param = true; inherit values; context = [ ]; };

  sanitize = p: if isPath p then "${builtins.path { path = p; name = baseNameOf p; }}" else p;

  # The entries of a directory given as a path, a store path string or a derivation.
  entriesOf = where: src:
    let
      dir = if isPath src then src else toString src;
    in
    if isPath src || builtins.isString src || (builtins.isAttrs src && src ? outPath) then readDir dir
    else fail where "'src' must be a directory (a path such as ./data, or a package)";

  # One store path per entry, so that changing one file changes only the jobs that use it
  # (the copy is named after the entry; RepX keeps the bare name under a wrapper).
  entryPath = src: n:
    if isPath src then "${builtins.path { path = src + "/${n}"; name = if match "[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*" n != null then n else "entry"; }}"
    else "${toString src}/${n}";

  scan =
    { src, match ? null, type ? "any" }@args:
    let
      where = "utils.scan";
      entries = entriesOf where src;
      kinds = { any = null; file = "regular"; directory = "directory"; };
      want = kinds.${type} or (fail where "type '${toString type}' must be one of 'any', 'file', 'directory'");
      names = filter (n: (want == null || entries.${n} == want) && (args.match or null == null || builtins.match args.match n != null)) (attrNames entries);
    in
    if names == [ ] then fail where "no entry of ${toString src} matches (type '${type}'${if match == null then "" else ", match '${match}'"}); a parameter needs at least one value"
    else tagged (map (entryPath src) names);

  zip =
    group:
    let
      members = attrNames group;
      lists = builtins.mapAttrs (_: v: if builtins.isAttrs v && (v._repx_param or false) then v.values else v) group;
      lengths = map (m: length lists.${m}) members;
      notLists = filter (m: !(isList lists.${m})) members;
      describe = concatStringsSep ", " (map (m: "'${m}' has ${toString (length lists.${m})}") members);
    in
    if members == [ ] then fail "utils.zip" "needs at least one list"
    else if notLists != [ ] then fail "utils.zip" "every member must be a list (${showList notLists} is not)"
    else if builtins.any (l: l != builtins.head lengths) lengths then fail "utils.zip" "the lists must have the same length, but ${describe}"
    else if builtins.head lengths == 0 then fail "utils.zip" "the lists ${showList members} are empty; every parameter needs at least one value"
    else { _repx_zip = true; groups = lists; length = builtins.head lengths; };
in
{
  inherit sanitize scan zip;
  range = a: b: builtins.genList (i: a + i) (b - a + 1);
  list = l: if isList l then tagged l else fail "utils.list" "needs a list, e.g. utils.list [ \"a\" \"b\" ]";
  dirs = src: scan { inherit src; type = "directory"; };
  files = src: scan { inherit src; type = "file"; };
  env = vars: let ks = attrNames vars; in if ks == [ ] then "" else "export " + concatStringsSep " " (map (k: "${k}=${vars.${k}}") ks);
}
