# Small helpers for the repx library. The library must not depend on nixpkgs' `lib`
# (it builds offline against a bare package set), so the few list/attrset helpers it
# needs live here, built on builtins only.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    genList
    isAttrs
    isFunction
    length
    listToAttrs
    substring
    ;

  concatMap = f: list: concatLists (map f list);

  unique = list: attrNames (listToAttrs (map (x: { name = x; value = true; }) list));

  # Call `f` with the subset of `args` it asks for, like nixpkgs' callPackage, so run,
  # pipeline and stage files may take `{ pkgs }`, `{ repx }`, both or `{ ... }`.
  callWith =
    args: f:
    if isFunction f then
      let
        wanted = builtins.functionArgs f;
      in
      f (if wanted == { } then args else builtins.intersectAttrs wanted args)
    else
      f;

  # A path inside the flake source (e.g. /nix/store/<hash>-source/stages/a.nix) shown
  # relative to the flake root, so messages name the file the user edits.
  relPath =
    p:
    let
      s = toString p;
      m = builtins.match "/nix/store/[^/]+/(.*)" s;
    in
    if m == null then s else builtins.head m;

  fail = where: msg: throw "repx: ${where}: ${msg}";

  # Nix base-32 alphabet (no e, o, u, t), as in store path hashes.
  alphabet = "0123456789abcdfghijklmnpqrsvwxyz";

  # 32 Nix base-32 characters (160 bits) of a sha256 of `s`, as long as a store hash.
  # Every job id is one, so it sits on the hot path of evaluation. Nix 2.8's only builtin
  # that prints base 32 is `placeholder`: "/" and the 52 characters of the sha256 of
  # "nix-output:" + its argument; the last 32 are its low 160 bits. One primop, where
  # converting `hashString`'s hex digit by digit cost a third of the evaluation of a
  # 100,000-job lab. (placeholder refuses a string with context; the hash needs none.)
  hash32 = s: substring 21 32 (builtins.placeholder (builtins.unsafeDiscardStringContext s));

  # Depth-first topological sort of `nodes` (names) given `depsOf name` (names).
  # Throws `onCycle path` on a cycle, where path lists the names along the cycle.
  toposort =
    nodes: depsOf: onCycle:
    let
      visit =
        state: path: n:
        if elem n state.done then
          state
        else if elem n path then
          onCycle (path ++ [ n ])
        else
          let
            after = foldl' (s: d: visit s (path ++ [ n ]) d) state (depsOf n);
          in
          after // { done = after.done ++ [ n ]; };
    in
    (foldl' (s: n: visit s [ ] n) { done = [ ]; } nodes).done;

  # Cartesian product of lists of attrsets: [[{a}] [{b} {c}]] -> [{a,b} {a,c}].
  product = foldl' (acc: options: concatMap (partial: map (o: partial // o) options) acc) [ { } ];

  isType = tag: v: isAttrs v && v ? ${tag};

  # The elements of `list` with distinct `key x` (a string), in the order of their keys.
  uniqueBy = key: list: builtins.attrValues (builtins.listToAttrs (map (x: { name = builtins.unsafeDiscardStringContext (key x); value = x; }) list));

  # Whether two callStage / callRun values are the same one. `file` (a path) is compared
  # first because it is cheap; a function never equals itself in Nix, so for those the
  # whole value is compared (an attribute set is equal to itself).
  sameNode = a: b: (builtins.isFunction a.file || builtins.isFunction b.file || a.file == b.file) && a == b;

  showList = l: if l == [ ] then "(none)" else concatStringsSep ", " (map (x: "'${toString x}'") l);
in
{
  inherit
    alphabet
    callWith
    concatMap
    fail
    hash32
    isType
    product
    relPath
    sameNode
    showList
    toposort
    uniqueBy
    unique
    ;
  inherit (builtins) filter length;
}
