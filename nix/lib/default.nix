# The repx Nix library: what experiment flakes call.
#
#   repx.lib.mkLab { pkgs, gitHash, lab_version, runs, groups ? { }, … }
#   repx.lib.callRun ./run.nix [ other [ other2 "soft" ] ]
#   pipeline: { repx }: repx.mkPipe rec { a = repx.callStage ./a.nix [ ]; b = repx.callStage ./b.nix [ a ]; }
#
# The names and shapes follow RepX so that existing run, pipeline and stage files work.
let
  util = import ./util.nix;
  inherit (builtins) attrNames attrValues concatStringsSep elem filter isAttrs isList isString length listToAttrs;
  inherit (util) fail isType showList;

  version = "0.1.0";

  # What pipeline and run files receive as `repx`.
  api = {
    mkPipe = stages: { __repxPipe = true; inherit stages; };
    callStage = file: deps: { __repxStage = true; inherit file deps; };
    gather = target: { __repxGather = true; inherit target; };
    fromRun = run: stage: { __repxFromRun = true; inherit run stage; };
    # One sweep axis whose lists advance together: zip { a = [ 1 2 ]; b = [ "x" "y" ]; }.
    zip =
      lists:
      let
        names = attrNames lists;
        n = length lists.${builtins.head names};
        bad = filter (k: !(isList lists.${k}) || length lists.${k} != n) names;
      in
      if names == [ ] then throw "repx: zip needs at least one list"
      else if !(builtins.all (k: isList lists.${k}) names) then throw "repx: zip: every value must be a list (${showList (filter (k: !(isList lists.${k})) names)} is not)"
      else if n == 0 then throw "repx: zip: the lists ${showList names} are empty; every parameter needs at least one value"
      else if bad != [ ] then throw "repx: zip: lists ${showList names} must all be lists of the same length (${showList bad} differ)"
      else {
        ${concatStringsSep "+" names} = {
          __repxZip = true;
          inherit names;
          rows = builtins.genList (i: listToAttrs (map (k: { name = k; value = builtins.elemAt lists.${k} i; }) names)) n;
        };
      };
    range = a: b: builtins.genList (i: a + i) (b - a + 1);
  };

  callRun =
    file: deps:
    let
      spec = util.callWith { repx = api; } (import file);
      where = util.relPath file;
      normDep =
        d:
        if isType "__repxRun" d then { run = d; kind = "hard"; }
        else if isList d && length d == 2 && isType "__repxRun" (builtins.head d) && elem (builtins.elemAt d 1) [ "hard" "soft" ] then
          { run = builtins.head d; kind = builtins.elemAt d 1; }
        else fail where "a run dependency must be a run (repx.callRun …) or [ RUN \"hard\" ] / [ RUN \"soft\" ]";
    in
    {
      __repxRun = true;
      inherit file spec api;
      name =
        if isAttrs spec && spec ? name && isString spec.name then spec.name
        else fail where "a run file must set 'name' to a string";
      deps = map normDep deps;
    };

  labArgs = [ "pkgs" "gitHash" "lab_version" "runs" "groups" "containerMode" "name" "repx-lib" "shellcheckSeverity" ];

  mkLab =
    args:
    let
      unknown = filter (k: !(elem k labArgs)) (attrNames args);
      pkgs = args.pkgs or (fail "mkLab" "needs 'pkgs' (nixpkgs' legacyPackages, or the repx offline toolchain)");
      containerMode = args.containerMode or "none";
      severity = args.shellcheckSeverity or "info";
      tools = {
        inherit (pkgs) bash coreutils findutils gnused gnugrep gawk jq shellcheck rsync bubblewrap;
        # The stage check's bash parser; a toolchain assembled before it was added lacks it.
        shfmt = pkgs.shfmt or (fail "mkLab" "the package set has no 'shfmt' (the stage check parses scripts with it); with the repx offline toolchain, re-run tools/setup.sh or nix/toolchain/assemble.sh");
        system = pkgs.system or pkgs.stdenv.hostPlatform.system;
      };
      stageLib = import ./stage.nix { inherit util tools; };
      expand = import ./expand.nix { inherit util stageLib tools pkgs severity containerMode; };
      runsIn = args.runs or (fail "mkLab" "needs 'runs'");
      runList = if isAttrs runsIn && !(runsIn ? __repxRun) then attrValues runsIn else runsIn;
      runNames = map (r: r.name) runList;
      dupRuns = filter (n: length (filter (m: m == n) runNames) > 1) runNames;
      runByName = listToAttrs (map (r: { name = r.name; value = r; }) runList);
      order =
        if unknown != [ ] then fail "mkLab" "unknown argument(s) ${showList unknown}; allowed: ${showList labArgs}"
        else if !(elem containerMode [ "none" "unified" "per-run" ]) then fail "mkLab" "containerMode '${toString containerMode}' is not supported; use \"none\" (jobs run on the host's / under bubblewrap), \"unified\" (one image rootfs for every job) or \"per-run\" (one image per run)"
        else if !(elem severity [ "error" "warning" "info" "style" ]) then fail "mkLab" "shellcheckSeverity '${toString severity}' must be one of 'error', 'warning', 'info', 'style'"
        else if dupRuns != [ ] then fail "mkLab" "duplicate run name(s) ${showList (util.unique dupRuns)}: every run file needs its own 'name'"
        else util.toposort runNames
          (n: map (d: if runByName ? ${d.run.name} then d.run.name else fail (util.relPath runByName.${n}.file) "run '${n}' depends on run '${d.run.name}', which is not in the lab's runs") runByName.${n}.deps)
          (cycle: fail "mkLab" "cyclic run dependencies: ${concatStringsSep " -> " cycle}");
      expanded = builtins.foldl' (
        acc: n:
        acc // {
          ${n} = expand.expandRun {
            run = runByName.${n};
            done = listToAttrs (map (d: { name = d.run.name; value = acc.${d.run.name}; }) runByName.${n}.deps);
          };
        }
      ) { } order;
      groupsIn = args.groups or { };
      groups = builtins.mapAttrs (
        g: members:
        if runByName ? ${g} then fail "mkLab" "group '${g}' has the name of a run; pick another group name"
        else map (m: let n = if isString m then m else m.name; in if runByName ? ${n} then n else fail "mkLab" "group '${g}' names unknown run '${n}' (runs: ${showList runNames})") members
      ) groupsIn;
    in
    import ./lab.nix {
      inherit util tools pkgs version groups order expanded containerMode;
      name = args.name or "lab";
      gitHash = args.gitHash or "unknown";
      labVersion = toString (args.lab_version or "0.0.0");
      runDeps = listToAttrs (map (n: { name = n; value = listToAttrs (map (d: { name = d.run.name; value = d.kind; }) runByName.${n}.deps); }) order);
    };
in
{
  inherit mkLab callRun version;
  inherit (api) mkPipe callStage gather fromRun zip range;
  # Provenance helper: the commit of a clean git tree, "dirty" for a git tree with
  # uncommitted changes, "unknown" otherwise.
  gitHashOf = self: self.rev or (if self ? lastModified && self ? narHash && self ? submodules then "dirty" else if self ? revCount then "dirty" else "unknown");
}
