# The repx Nix library: what experiment flakes call.
#
#   repx.lib.mkLab { pkgs, gitHash, lab_version, runs, groups ? { }, … }
#   repx.lib.callRun ./run.nix [ other [ other2 "soft" ] ]
#   pipeline: { repx }: repx.mkPipe rec { a = repx.callStage ./a.nix [ ]; b = repx.callStage ./b.nix [ a ]; }
#
# The names and shapes follow RepX so that existing run, pipeline and stage files work.
let
  util = import ./util.nix;
  inherit (builtins) attrNames concatStringsSep elem filter head isAttrs isList isString length listToAttrs;
  inherit (util) concatMap fail isType showList;

  version = "0.1.0";

  # What pipeline and run files receive as `repx`.
  api = {
    mkPipe = stages: { __repxPipe = true; inherit stages; };
    # A stage file (a path) or, as RepX allows, the stage function itself.
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

  # A run placeholder, resolved by mkLab (run files are called with what mkLab is given:
  # pkgs, repx-lib, repx). `file` may be a path or a function, as in RepX.
  callRun =
    file: deps:
    if !(builtins.isPath file || isString file || builtins.isFunction file) then fail "callRun" "needs a run file (a path) or a function returning a run, not a ${builtins.typeOf file}"
    else if !(isList deps) then fail "callRun ${util.relPath file}" "the dependencies must be a list, e.g. [ ] or [ [ other \"soft\" ] ]"
    else { __repxRun = true; _repx_type = "run_placeholder"; inherit file deps; runPath = file; dependencies = deps; };

  containerModes = [ "none" "unified" "per-run" ];
  labArgs = [ "pkgs" "gitHash" "lab_version" "runs" "groups" "containerMode" "runContainerMode" "name" "repx-lib" "shellcheckSeverity" ];

  mkLab =
    args:
    let
      unknown = filter (k: !(elem k labArgs)) (attrNames args);
      pkgs = args.pkgs or (fail "mkLab" "needs 'pkgs' (nixpkgs' legacyPackages, or the repx offline toolchain)");
      # As RepX and the lab layout: one image for the lab (a few KiB per revision: the image
      # skeleton and the shared OCI layout, never a copy of the closure: bench/bench_images.py).
      containerMode = args.containerMode or "unified";
      severity = args.shellcheckSeverity or "info";
      tools = {
        inherit (pkgs) bash coreutils findutils gnused gnugrep gawk jq shellcheck rsync bubblewrap;
        # The stage check's bash parser; a toolchain assembled before it was added lacks it.
        shfmt = pkgs.shfmt or (fail "mkLab" "the package set has no 'shfmt' (the stage check parses scripts with it); with the repx offline toolchain, re-run tools/setup.sh or nix/toolchain/assemble.sh");
        system = pkgs.system or pkgs.stdenv.hostPlatform.system;
      };
      stageLib = import ./stage.nix { inherit util tools; };
      # The mode of the one-run labs `.runs.<name>` (RepX's option; its default "per-run"
      # when the lab has images, else "none", so that those labs share the lab's job ids).
      runContainerMode = args.runContainerMode or (if containerMode == "none" then "none" else "per-run");
      expandWith = mode: import ./expand.nix { inherit util stageLib tools pkgs severity; containerMode = mode; };
      expand = expandWith containerMode;
      # What run and pipeline files may ask for: pkgs and its attributes, `repx` (ours),
      # `repx-lib` (RepX's name, with `utils`).
      repxLib = lib // { utils = mkUtils { inherit pkgs; }; };
      fileArgs = stageLib.fileArgs pkgs { repx = api; repx-lib = repxLib; };
      runsIn = args.runs or (fail "mkLab" "needs 'runs'");
      # [ { attr; ph; } ]: the attribute a run is bound to names it when its file does not.
      entries =
        if isAttrs runsIn && !(runsIn ? __repxRun) then map (a: { attr = a; ph = runsIn.${a}; }) (attrNames runsIn)
        else if isList runsIn then map (ph: { attr = null; inherit ph; }) runsIn
        else fail "mkLab" "'runs' must be an attribute set (or a list) of repx.callRun values";
      instantiate =
        e:
        let
          ph = if isType "__repxRun" e.ph then e.ph else fail "mkLab" "runs${if e.attr == null then "" else ".${e.attr}"} is not a run (make it with callRun ./run.nix [ … ])";
          where = if builtins.isFunction ph.file then "runs.${toString e.attr}" else util.relPath ph.file;
          spec = util.callWith fileArgs (if builtins.isFunction ph.file then ph.file else import ph.file);
        in
        {
          inherit (ph) file;
          inherit spec where;
          inherit (e) attr;
          placeholder = ph;
          api = api;
          name =
            if !(isAttrs spec) then fail where "a run file must give an attribute set { name = …; pipelines = [ … ]; parameters = { … }; }"
            else if spec ? name then (if isString spec.name then spec.name else fail where "'name' must be a string")
            else if e.attr != null then e.attr
            else fail where "a run file must set 'name' to a string (or be bound to an attribute of mkLab's runs)";
        };
      runList = map instantiate entries;
      # A dependency (a callRun value) -> the run it is.
      nameOfPlaceholder =
        where: ph:
        let m = filter (r: util.sameNode r.placeholder ph) runList; in
        if m == [ ] then fail where "refers to a run (${if builtins.isFunction ph.file then "a function" else util.relPath ph.file}) that is not among mkLab's runs; add it there" else (head m).name;
      normDep =
        r: d:
        if isType "__repxRun" d then { run = nameOfPlaceholder r.where d; kind = "hard"; }
        else if isList d && length d == 2 && isType "__repxRun" (builtins.head d) && elem (builtins.elemAt d 1) [ "hard" "soft" ] then
          { run = nameOfPlaceholder r.where (builtins.head d); kind = builtins.elemAt d 1; }
        else fail r.where "a run dependency must be a run (callRun …) or [ RUN \"hard\" ] / [ RUN \"soft\" ]";
      runNames = map (r: r.name) runList;
      dupRuns = filter (n: length (filter (m: m == n) runNames) > 1) runNames;
      runByName = listToAttrs (map (r: { name = r.name; value = r // { deps = map (normDep r) r.placeholder.deps; }; }) runList);
      order =
        if unknown != [ ] then fail "mkLab" "unknown argument(s) ${showList unknown}; allowed: ${showList labArgs}"
        else if !(elem containerMode containerModes) then fail "mkLab" "containerMode '${toString containerMode}' is not supported; use \"unified\" (the default: one image for every job), \"per-run\" (one image per run) or \"none\" (no image: the hermetic sandbox, no podman or docker)"
        else if !(elem runContainerMode containerModes) then fail "mkLab" "runContainerMode '${toString runContainerMode}' is not supported; use \"none\", \"unified\" or \"per-run\" (the mode of the one-run labs .runs.<name>)"
        else if !(elem severity [ "error" "warning" "info" "style" ]) then fail "mkLab" "shellcheckSeverity '${toString severity}' must be one of 'error', 'warning', 'info', 'style'"
        else if dupRuns != [ ] then fail "mkLab" "duplicate run name(s) ${showList (util.unique dupRuns)}: every run file needs its own 'name'"
        else util.toposort runNames
          (n: map (d: d.run) runByName.${n}.deps)
          (cycle: fail "mkLab" "cyclic run dependencies: ${concatStringsSep " -> " cycle}");
      # Runs in order. A job is shared by runs that expand to the same content, but a job
      # fed by jobs of its own run names that run in its record: when such a job of a later
      # run would get the id of a job of an earlier run, the later run is expanded again
      # with ids that name it (only then, so the ids of other labs stay as they are).
      expandedWith = expand: (builtins.foldl' (
        acc: n:
        let
          args = {
            run = runByName.${n};
            depNames = map (d: d.run) runByName.${n}.deps;
            done = listToAttrs (map (d: { name = d.run; value = acc.runs.${d.run}; }) runByName.${n}.deps);
            pkgsArgs = fileArgs;
          };
          shared = expand.expandRun args;
          clash = builtins.any (id: acc.seen ? ${id}) shared.ownJobIds;
          r = if clash then expand.expandRun (args // { ownIds = true; }) else shared;
        in
        {
          runs = acc.runs // { ${n} = r; };
          seen = acc.seen // listToAttrs (map (id: { name = id; value = true; }) (builtins.attrNames r.jobs));
        }
      ) { runs = { }; seen = { }; } order).runs;
      expanded = expandedWith expand;
      # The same runs for the blueprint path: expanded lazily, no job id forced (the shared
      # ids above are decided by expand-lab.py, which follows the same rule).
      blueWith = expand: builtins.foldl' (
        acc: n:
        acc // {
          ${n} = expand.expandRun {
            run = runByName.${n};
            depNames = map (d: d.run) runByName.${n}.deps;
            done = listToAttrs (map (d: { name = d.run; value = acc.${d.run}; }) runByName.${n}.deps);
            pkgsArgs = fileArgs;
            blueprintMode = true;
          };
        }
      ) { } order;
      blueExpanded = blueWith expand;
      # A job's view (an image or the bare sandbox) is part of its id: the one-run labs are
      # expanded again only when runContainerMode changes that view (lazily: only when built).
      hasImage = mode: mode != "none";
      sameView = hasImage runContainerMode == hasImage containerMode;
      runExpanded = if sameView then expanded else expandedWith (expandWith runContainerMode);
      runBlueExpanded = if sameView then blueExpanded else blueWith (expandWith runContainerMode);
      groupsIn = args.groups or { };
      # Group members: run names, or the run values themselves (RepX: `all = with runs; [ a b ]`).
      groups = builtins.mapAttrs (
        g: members:
        if runByName ? ${g} then fail "mkLab" "group '${g}' has the name of a run; pick another group name"
        else if !(isList members) then fail "mkLab" "group '${g}' must be a list of runs"
        else map (m:
          let n = if isString m then m else if isType "__repxRun" m then nameOfPlaceholder "mkLab: group '${g}'" m else fail "mkLab" "group '${g}' has a member that is neither a run nor a run name"; in
          if runByName ? ${n} then n else fail "mkLab" "group '${g}' names unknown run '${n}' (runs: ${showList runNames})") members
      ) groupsIn;
      # The lab of some runs (and the runs they depend on, so that every input resolves).
      closureOf = names: util.toposort names (n: map (d: d.run) runByName.${n}.deps) (_: [ ]);
      labOf =
        selected: labName: groupsOf: mode: expanded: blueExpanded:
        let
          lab = import ./lab.nix {
          inherit util tools pkgs version expanded blueExpanded;
          fullOrder = order;
          containerMode = mode;
          groups = groupsOf;
          order = filter (n: elem n selected) order;
          name = labName;
          gitHash = args.gitHash or "unknown";
          labVersion = toString (args.lab_version or "0.0.0");
          runDeps = listToAttrs (map (n: { name = n; value = listToAttrs (map (d: { name = d.run; value = d.kind; }) runByName.${n}.deps); }) order);
          };
        in
        # `repx.evaluationPath`: the same lab built by the evaluation path, which the
        # blueprint path must reproduce byte for byte (tests/integration/test_lab_blueprint.py).
        if blueExpanded == null then lab
        else lab // { repx = lab.repx // { evaluationPath = labOf selected labName groupsOf mode expanded null; }; };
      labName = args.name or "lab";
      whole = labOf order labName groups containerMode expanded blueExpanded;
      # RepX's shape: `.lab` is the lab, `.runs.<name>` a lab of one run (here with the runs
      # it depends on), by run name and by the attribute the run is bound to.
      perRun = listToAttrs (concatMap (r:
        let l = labOf (closureOf [ r.name ]) "${labName}-${r.name}" { } runContainerMode runExpanded runBlueExpanded; in
        [ { name = r.name; value = l; } ] ++ (if r.attr != null && r.attr != r.name then [ { name = r.attr; value = l; } ] else [ ])
      ) runList);
    in
    whole // { lab = whole; runs = perRun; };

  mkUtils = { pkgs ? null }: import ./sweep.nix { inherit util; };

  lib = {
    inherit mkLab callRun version mkUtils;
    # The same helpers without a package set (they need none): repx.lib.utils.range 1 3.
    utils = mkUtils { };
    inherit (api) mkPipe callStage gather fromRun zip range;
    # Provenance helper: the commit of a clean git tree, "dirty" for a git tree with
    # uncommitted changes, "unknown" otherwise.
    gitHashOf = self: self.rev or (if self ? lastModified && self ? narHash && self ? submodules then "dirty" else if self ? revCount then "dirty" else "unknown");
    # RepX's name for the helpers pipeline files receive (`repx`).
    mkPipelineHelpers = _: api;
  };
in
lib
