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
    hashString
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
  hexValue = {
    "0" = 0; "1" = 1; "2" = 2; "3" = 3; "4" = 4; "5" = 5; "6" = 6; "7" = 7;
    "8" = 8; "9" = 9; a = 10; b = 11; c = 12; d = 13; e = 14; f = 15;
  };
  digit = i: substring i 1 alphabet;
  # Five hex digits (20 bits) become four base-32 digits.
  hexBlockToBase32 =
    hex: off:
    let
      h = i: hexValue.${substring (off + i) 1 hex};
      v = ((((h 0) * 16 + h 1) * 16 + h 2) * 16 + h 3) * 16 + h 4;
    in
    digit (v / 32768)
    + digit (builtins.bitAnd (v / 1024) 31)
    + digit (builtins.bitAnd (v / 32) 31)
    + digit (builtins.bitAnd v 31);

  # 32 base-32 characters from the first 160 bits of a sha256 (as long as a store hash).
  hash32 = s: let hex = hashString "sha256" s; in concatStringsSep "" (genList (i: hexBlockToBase32 hex (i * 5)) 8);

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
