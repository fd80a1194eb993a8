# Job expansion: a run's parameter axes × its pipelines' stages -> jobs with content ids.
#
# Everything here is pure evaluation: no derivation per job. A stage's jobs range over the
# axes of the parameters it declares plus the axes of its (non-gather) upstream stages; a
# `gather` dependency collects every upstream job that agrees on the shared axes.
{ util, stageLib, tools, pkgs, severity, containerMode ? "none" }:
let
  inherit (builtins)
    attrNames
    attrValues
    concatStringsSep
    elem
    elemAt
    filter
    genList
    groupBy
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    sort
    toJSON
    ;
  inherit (util) concatMap fail isType showList unique;

  # `params` and `paramsDependencies` are the spellings of RepX's documentation, beside
  # the `parameters` / `parametersDependencies` its code reads.
  runKeys = [ "name" "pipelines" "parameters" "params" "description" "hashMode" "parametersDependencies" "paramsDependencies" ];
  hashModes = [ "pure" "params-only" ];

  # What a job can see is part of its identity. Under containerMode "unified" a job also
  # sees the lab image (build-lab.sh: /bin/sh, /usr/bin/env, /etc files; recipe
  # "repx-image/1" — bump it in lab.nix and here when the recipe changes), so that image
  # enters every job id: a job that succeeded without the image is not reused with it,
  # and back. "per-run" images are the same skeleton (one per run, listing the run's
  # closure), so a job sees the same under both and keeps its id. "none" (the hermetic
  # sandbox: the job's closure, which its script path already names) adds nothing, so ids
  # of such labs stay as they were.
  environmentLines =
    if containerMode == "unified" || containerMode == "per-run" then
      [ "environment:unified repx-image/1 ${tools.bash}/bin/bash ${tools.coreutils}/bin/env" ]
    else
      [ ];

  # A parameter value must survive the trip through JSON unchanged: Nix 2.8 prints floats
  # with 6 significant digits and jq holds integers as doubles, so such values would
  # silently merge distinct jobs or reach the script altered.
  checkValue =
    where: p: x:
    if builtins.isFloat x && builtins.fromJSON (toJSON x) != x then
      fail where "parameter '${p}': the float ${toJSON x}… cannot be represented exactly (Nix prints 6 significant digits); write it as a string, e.g. \"${toString x}\""
    else if builtins.isInt x && (x > 9007199254740992 || x < -9007199254740992) then
      fail where "parameter '${p}': the integer ${toString x} is beyond 2^53 and would be altered in JSON; write it as a string"
    else if builtins.isList x || (isAttrs x && !(x ? outPath)) then
      # A job's parameters reach its script as scalars (RepX refuses the same at run time).
      fail where "parameter '${p}': the value ${showValue x} is ${if builtins.isList x then "a list" else "an attribute set"}; every value must be a string, number, boolean, path or null (sweep over it instead, or write it as one string, e.g. \"10 20 30\")"
    else if builtins.isFunction x then
      fail where "parameter '${p}': a value is a function; every value must be a string, number, boolean, path or null"
    else true;

  showValue = x: let r = builtins.tryEval (toJSON x); in if r.success then r.value else "(a ${builtins.typeOf x})";

  # A derivation given as a value stands for its store path.
  scalar = x: if isAttrs x && x ? outPath then "${x}" else x;

  # The values of one parameter: a list, RepX's `utils.list`/`scan`/`dirs` result, or a
  # zip (ours, keyed by "a+b", or RepX's anchor-keyed `utils.zip`).
  valuesOf = where: p: v:
    if isAttrs v && (v._repx_param or false) then v.values
    else if isList v && v != [ ] then v
    else fail where "parameter '${p}' must be a non-empty list of values, e.g. ${p} = [ 1 2 3 ]; (use [ null ] for a parameter that is not needed)";

  # Parameter attrset -> axes [{ names; rows = [{ name = value; }] }].
  axesOf =
    where: parameters:
    let
      axes = map (
        p:
        let
          v = parameters.${p};
        in
        if isType "__repxZip" v then
          { names = v.names; rows = map (r: builtins.mapAttrs (_: scalar) r) v.rows; }
        else if isAttrs v && (v._repx_zip or false) then
          let
            members = attrNames v.groups;
            lists = builtins.mapAttrs (m: valuesOf where m) v.groups;
          in
          if elem p members then fail where "utils.zip anchor '${p}' is also the name of one of its members; rename the anchor"
          else { names = members; rows = genList (i: listToAttrs (map (m: { name = m; value = scalar (elemAt lists.${m} i); }) members)) v.length; }
        else
          { names = [ p ]; rows = map (x: { ${p} = scalar x; }) (valuesOf where p v); }
      ) (attrNames parameters);
      names = concatMap (a: a.names) axes;
      twice = filter (n: length (filter (m: m == n) names) > 1) (unique names);
      valid = builtins.all (a: builtins.all (r: builtins.all (n: r.${n} == null || checkValue where n r.${n}) a.names) a.rows) axes;
    in
    if twice != [ ] then fail where "parameter(s) ${showList twice} given more than once (directly and in a zip, or in two zips)"
    else assert valid; axes;

  # A dependency entry of callStage, normalised to { target; gather; mapping = null | [{input; output}] }.
  normaliseDep =
    where: d:
    let
      asTarget =
        t:
        if isType "__repxGather" t then (asTarget t.target) // { gather = true; }
        else if isType "__repxStage" t then { kind = "local"; node = t; gather = false; }
        else if isType "__repxFromRun" t then { kind = "run"; inherit (t) run stage; gather = false; }
        else fail where "a dependency must be a stage (repx.callStage …), repx.gather STAGE, repx.fromRun \"run\" \"stage\", or a list [ STAGE \"output\" \"input\" ]";
    in
    if isList d then
      if length d == 3 && isString (elemAt d 1) && isString (elemAt d 2) then
        (asTarget (head d)) // { mapping = [ { output = elemAt d 1; input = elemAt d 2; } ]; }
      else if length d == 2 && isString (elemAt d 1) then
        (asTarget (head d)) // { mapping = [ { output = elemAt d 1; input = elemAt d 1; } ]; }
      else
        fail where "a list dependency must be [ STAGE \"output\" \"input\" ] or [ STAGE \"name\" ]"
    else
      (asTarget d) // { mapping = null; };

  # The position of `x` in the list `l` (which holds it).
  indexOf = x: l: let go = i: if elemAt l i == x then i else go (i + 1); in go 0;

  uniqueJobs = js: builtins.attrValues (listToAttrs (map (j: { name = j.id; value = j; }) js));

  canonicalInput = i: concatStringsSep "\t" [ i.name i.job i.output (if i.gather then "g" else "") ];

  # Dynamic stage attributes (stage.nix's dynamicKeys) are resolved for each job from the
  # job's own parameters. The parameters a function reads are found by probing it at the
  # first job with each parameter in turn made to throw; it is then evaluated once per
  # distinct value of those, every other parameter still throwing, so that a result which
  # did read another one (a read that depends on a value) is noticed and recomputed from
  # all of the job's parameters instead. `check` validates each distinct result once.
  probeFail = "repx: a dynamic stage attribute read a parameter it was not expected to";
  resolver =
    fn: check: epList:
    let
      first = head epList;
      ok = ps: (builtins.tryEval (builtins.deepSeq (fn ps) true)).success;
      reads = filter (p: !(ok (first // { ${p} = throw probeFail; }))) (attrNames first);
      narrowed = ps: builtins.mapAttrs (k: v: if elem k reads then v else throw probeFail) ps;
      keys = map (ps: toJSON (map (p: ps.${p}) reads)) epList;
      narrow = listToAttrs (genList (i: {
        name = elemAt keys i;
        value = let v = fn (narrowed (elemAt epList i)); r = builtins.tryEval (builtins.deepSeq v v); in if r.success then { value = check r.value; } else { };
      }) (length epList));
      full = listToAttrs (map (ps: { name = toJSON ps; value = check (fn ps); }) epList);
    in
    # The value for the i-th job (of epList).
    i: narrow.${elemAt keys i}.value or full.${toJSON (elemAt epList i)};

  isRunInput = i: i == "store__base" || builtins.substring 0 10 i == "metadata__";

  expandRun =
    {
      run, # { spec; name; file; api; } from mkLab
      done, # run name -> result of expandRun, for the runs this run depends on
      depNames, # the names of those runs
      pkgsArgs, # what pipeline files may ask for (pkgs, its attributes, repx)
      # Whether the ids of jobs with inputs from this run name the run (see mkLab: set when
      # such a job would otherwise have the id of a job of an earlier run).
      ownIds ? false,
      # Whether this expansion is the blueprint path's (lab.nix): then a dynamic stage's
      # variants come from its parameters' values (`blueVariants`), not from its jobs.
      blueprintMode ? false,
    }:
    let
      spec = run.spec;
      name = run.name;
      where = "${run.where} (run ${name})";
      unknownKeys = filter (k: !(elem k runKeys)) (attrNames spec);
      pipelines = spec.pipelines or (fail where "missing attribute 'pipelines' (a list of pipeline files)");
      parameters =
        if spec ? parameters && spec ? params then fail where "give either 'parameters' or 'params', not both"
        else spec.parameters or spec.params or { };
      hashMode = spec.hashMode or "pure";
      paramDeps = (spec.parametersDependencies or [ ]) ++ (spec.paramsDependencies or [ ]);
      axes =
        if unknownKeys != [ ] then fail where "unknown attribute(s) ${showList unknownKeys}; allowed: ${showList runKeys}"
        else if !(elem hashMode hashModes) then fail where "hashMode '${toString hashMode}' must be one of ${showList hashModes}"
        else if !(isList paramDeps) then fail where "'parametersDependencies' must be a list of packages"
        else if !(isAttrs parameters) then fail where "'parameters' must be an attribute set of lists"
        else if !(isList pipelines) || pipelines == [ ] then fail where "'pipelines' must be a non-empty list of pipeline files"
        else axesOf where parameters;
      axisOf = listToAttrs (concatMap (i: map (p: { name = p; value = toString i; }) (elemAt axes i).names) (genList (i: i) (length axes)));
      rowsOf = a: (elemAt axes (builtins.fromJSON a)).rows;
      runParameters = listToAttrs (concatMap (ax: map (p: { name = p; value = map (r: r.${p}) ax.rows; }) ax.names) axes);

      keyOf = axs: combo: concatStringsSep "," (map (a: "${a}:${toString combo.${a}}") axs);

      expandPipeline =
        pipeIndex: pipeIn:
        let
          pipeFile = if builtins.isPath pipeIn || isString pipeIn then pipeIn else "${run.where}: pipelines[${toString pipeIndex}]";
          pwhere = "${util.relPath pipeFile} (run ${name})";
          pipe =
            if builtins.isPath pipeIn || isString pipeIn then util.callWith pkgsArgs (import pipeIn)
            else if builtins.isFunction pipeIn then util.callWith pkgsArgs pipeIn
            else pipeIn;
          # repx.mkPipe { … }, or (as RepX's mkPipe is the identity) a plain attribute set of stages.
          nodes =
            if isType "__repxPipe" pipe then pipe.stages
            else if isAttrs pipe && pipe != { } && builtins.all (n: isType "__repxStage" pipe.${n}) (attrNames pipe) then pipe
            else fail pwhere "a pipeline must be repx.mkPipe { … } or an attribute set of stages (repx.callStage …)";
          attrs = attrNames nodes;
          # Which attribute of this pipeline a dependency is (dependencies are the values).
          attrOf = node: let m = filter (n: util.sameNode nodes.${n} node) attrs; in if m == [ ] then null else head m;
          loaded = listToAttrs (map (n: { name = n; value = stageLib.load pkgs (nodes.${n} // { where = "${util.relPath pipeFile} (stage ${n})"; }); }) attrs);
          staticNames = concatMap (n: if loaded.${n}.pname != null then [ loaded.${n}.pname ] else [ ]) attrs;
          dupNames = filter (n: length (filter (m: m == n) staticNames) > 1) (unique staticNames);

          # What a stage's own parameters are called in the run: "pname.param" (RepX's dot
          # notation, for a dynamic pname the pipeline attribute) before "param".
          axisKey = n: p: let s = if loaded.${n}.pname != null then loaded.${n}.pname else n; in if axisOf ? "${s}.${p}" then "${s}.${p}" else p;
          # A job's effective parameter: its run value, or the stage default for null.
          effective = st: p: raw:
            if raw != null then raw
            else let d = st.parameters.${p}; in if d == null || checkValue st.where p d then scalar d else false;
          # The shape (input and output names) of a stage, from its first parameter values;
          # every job of the stage must agree with it (checked per distinct value).
          shapeOf = listToAttrs (map (n: {
            name = n;
            value =
              let
                st = loaded.${n};
                firstEp = listToAttrs (map (p: let k = axisKey n p; in {
                  name = p;
                  value = effective st p (if axisOf ? ${k} then (head (rowsOf axisOf.${k})).${k} else null);
                }) st.paramNames);
                get = key: if st.dyn.${key} ? fn then st.checks.${key} (st.dyn.${key}.fn firstEp) else if key == "inputs" then st.inputNames else st.${key};
              in
              { inputNames = get "inputs"; outputs = get "outputs"; };
          }) attrs);

          # Resolve the dependencies of one stage into edges with explicit mappings.
          edgesOf =
            n:
            let
              st = loaded.${n};
              inputNames = shapeOf.${n}.inputNames;
              resolve =
                d:
                let
                  producer =
                    if d.kind == "local" then
                      let pa = attrOf d.node; in
                      if pa != null then { outputs = shapeOf.${pa}.outputs; label = "stage ${if loaded.${pa}.pname != null then loaded.${pa}.pname else pa}"; name = pa; }
                      else fail st.where "depends on a stage (${util.relPath d.node.file}) that is not part of this pipeline (stages: ${showList attrs})"
                    else
                      let
                        other = done.${d.run} or (fail st.where "uses run '${d.run}', which is not a dependency of run '${name}' (add it to the callRun dependencies)");
                      in
                      if other.stages ? ${d.stage} then { outputs = other.stages.${d.stage}.outputs; label = "stage ${d.stage} of run ${d.run}"; name = d.stage; }
                      else fail st.where "run '${d.run}' has no stage '${d.stage}' (stages: ${showList (attrNames other.stages)})";
                  implicit = map (o: { output = o; input = o; }) (filter (o: elem o inputNames) (attrNames producer.outputs));
                  mapping =
                    if d.mapping != null then d.mapping
                    else if implicit == [ ] then fail st.where "implicit dependency resolution failed: no output of ${producer.label} (${showList (attrNames producer.outputs)}) matches an input of this stage (${showList inputNames}); name them explicitly: [ STAGE \"output\" \"input\" ]"
                    else implicit;
                  badOut = filter (m: !(producer.outputs ? ${m.output})) mapping;
                  badIn = filter (m: !(elem m.input inputNames)) mapping;
                in
                if badOut != [ ] then fail st.where "${producer.label} has no output '${(head badOut).output}' (outputs: ${showList (attrNames producer.outputs)})"
                else if badIn != [ ] then fail st.where "has no input '${(head badIn).input}' (inputs: ${showList inputNames})"
                else d // { inherit mapping; producer = producer.name; };
              edges = map (d: resolve (normaliseDep st.where d)) nodes.${n}.deps;
              covered = concatMap (e: map (m: m.input) e.mapping) edges;
              unresolved = filter (i: !(elem i covered) && !(isRunInput i)) inputNames;
              twice = filter (i: length (filter (c: c == i) covered) > 1) inputNames;
            in
            if unresolved != [ ] then fail st.where "unresolved input(s) ${showList unresolved}: add a dependency that provides them"
            else if twice != [ ] then fail st.where "input(s) ${showList twice} provided by more than one dependency"
            else edges;

          edgesByName = listToAttrs (map (n: { name = n; value = edgesOf n; }) attrs);
          order =
            if dupNames != [ ] then fail pwhere "two stages share the pname ${showList dupNames}"
            else util.toposort attrs
              (n: map (e: e.producer) (filter (e: e.kind == "local") edgesByName.${n}))
              (cycle: fail pwhere "cyclic stage dependencies: ${concatStringsSep " -> " cycle}");

          # Expand stages in topological order; acc.<attr> = { axes; jobs; byKey; perCombo; … }.
          expandStage =
            acc: n:
            let
              st = loaded.${n};
              edges = edgesByName.${n};
              shape = shapeOf.${n};
              keys = listToAttrs (map (p: { name = p; value = axisKey n p; }) st.paramNames);
              axisOfParam = p: axisOf.${keys.${p}} or (fail st.where "parameter '${p}' is not provided by run '${name}' (its parameters: ${showList (attrNames runParameters)}); add ${p} = [ … ]; to the run (use [ null ] for the stage's default)");
              own = map axisOfParam st.paramNames;
              inherited = concatMap (e: if e.kind == "local" && !e.gather then acc.${e.producer}.axes else [ ]) edges;
              axs = unique (own ++ inherited);
              combos = util.product (map (a: genList (r: { ${a} = r; }) (length (rowsOf a))) axs);
              paramsOf = combo: listToAttrs (map (p: let k = keys.${p}; in { name = p; value = effective st p (elemAt (rowsOf axisOf.${k}) combo.${axisOf.${k}}).${k}; }) st.paramNames);

              # Inter-run inputs (store__base, metadata__<run>): resolved by the runner.
              runInputs = map (
                i:
                if i == "store__base" then { name = i; kind = "store_base"; }
                else
                  let r = builtins.substring 10 (builtins.stringLength i) i; in
                  if done ? ${r} then { name = i; kind = "run_metadata"; run = r; }
                  else fail st.where "input '${i}' asks for the jobs of run '${r}', which is not a dependency of run '${name}' (its dependencies: ${showList depNames}); add it to the callRun dependencies, e.g. [ ${r} \"soft\" ]"
              ) (filter isRunInput shape.inputNames);
              runInputLines = map (ri: "run-input\t${ri.name}\t${done.${ri.run}.hash}") (filter (ri: ri.kind == "run_metadata") runInputs);

              # The per-job values of pname/version/outputs/resources (inputs: names only).
              sameNames = what: ref: v: if attrNames v == attrNames ref then v else fail st.where "'${what}' gives the names ${showList (attrNames v)} for some parameters and ${showList (attrNames ref)} for others; only the values may depend on parameters";
              sameList = ref: v: if unique v == unique ref then v else fail st.where "'inputs' gives the names ${showList v} for some parameters and ${showList ref} for others; only the values may depend on parameters";
              epList = map paramsOf combos;
              attrFor = key: extra:
                if st.dyn.${key} ? fn then resolver st.dyn.${key}.fn (v: extra (st.checks.${key} v)) epList
                else let v = if key == "inputs" then st.inputNames else st.${key}; in _: v;
              # get.<attr> i: the value of the attribute for the i-th job.
              get = {
                pname = attrFor "pname" (v: v);
                version = attrFor "version" (v: v);
                outputs = attrFor "outputs" (sameNames "outputs" shape.outputs);
                resources = attrFor "resources" (v: v);
                inputs = attrFor "inputs" (sameList shape.inputNames);
              };
              variantOf = i: let v = { pname = get.pname i; version = get.version i; outputs = get.outputs i; }; in assert (get.inputs i) != null; v;
              # One script (and check) per distinct pname/version/outputs: a constant stage has one.
              staticVariant = { inherit (st) pname version outputs; };
              # Each job's variant, computed once (mkJob takes it by index).
              variants = if st.isDynamic then genList (i: let v = variantOf i; in { inherit v; key = toJSON v; }) (length epList) else [ ];
              scripts = listToAttrs (map (x: { name = x.key; value = mkVariant x.v; }) (if blueprintMode && st.isDynamic && blueOk then blueVariants else variants));

              # The blueprint path's variants of a dynamic stage: one per combination of the
              # values of the parameters its functions read (found by probing them at the
              # first job, as `resolver` does), each evaluated with every other parameter
              # throwing. `blueOk`: they all evaluated; otherwise (a read that depends on a
              # value, an error) the lab takes the evaluation path, which reports the error.
              dynKeys = filter (k: st.dyn.${k} ? fn) [ "pname" "version" "inputs" "outputs" "resources" ];
              # (the first job's parameters: every axis at its first row; not `head epList`,
              # which would build the list of combinations)
              firstParams = listToAttrs (map (p: { name = p; value = effective st p (head (rowsOf (axisOfParam p))).${keys.${p}}; }) st.paramNames);
              readsOf = k:
                let first = firstParams; in
                filter (p: !((builtins.tryEval (builtins.deepSeq (st.dyn.${k}.fn (first // { ${p} = throw probeFail; })) true)).success)) (attrNames first);
              reads = unique (concatMap readsOf dynKeys);
              readAxes = unique (map axisOfParam reads);
              subCombos = util.product (map (a: genList (r: { ${a} = r; }) (length (rowsOf a))) readAxes);
              blueVariantOf =
                c:
                let
                  ps = listToAttrs (map (p: {
                    name = p;
                    value = if elem p reads then let k = keys.${p}; in effective st p (elemAt (rowsOf (axisOfParam p)) c.${axisOfParam p}).${k} else throw probeFail;
                  }) st.paramNames);
                  valueOf = key: extra: if st.dyn.${key} ? fn then extra (st.checks.${key} (st.dyn.${key}.fn ps)) else if key == "inputs" then st.inputNames else st.${key};
                  x = {
                    v = { pname = valueOf "pname" (v: v); version = valueOf "version" (v: v); outputs = valueOf "outputs" (sameNames "outputs" shape.outputs); };
                    resources = valueOf "resources" (v: v);
                    inputs = valueOf "inputs" (sameList shape.inputNames);
                  };
                  r = builtins.tryEval (builtins.deepSeq x x);
                in
                if r.success then r.value // { ok = true; key = toJSON r.value.v; } else { ok = false; };
              blueVariants = if st.isDynamic then map blueVariantOf subCombos else [ { v = staticVariant; key = ""; resources = st.resources; ok = true; } ];
              blueOk = builtins.all (x: x.ok) blueVariants;
              # A scatter-gather stage (never dynamic) renders its pieces with scatter.nix:
              # one derivation linking them, one executable per piece.
              sg = st.kind == "scatter-gather";
              lib = if sg then stageLib.scatterLib else stageLib;
              mkVariant =
                v:
                let
                  stv = if sg then st else st // v // { inputNames = shape.inputNames; where = "${st.relFile} (stage ${v.pname})"; };
                  script = lib.mkScript pkgs stv;
                  scriptPath = if sg then script.path else "${script.drv}/bin/${v.pname}";
                in
                {
                  inherit script scriptPath;
                  inherit (v) pname;
                  executables = if sg then script.executables else [ { name = v.pname; script = scriptPath; } ];
                  check = lib.mkCheck pkgs stv script severity;
                };
              staticScript = mkVariant staticVariant;
              # The scripts of the jobs named `pn` (one per distinct variant).
              variantScripts = pn: if st.isDynamic then filter (sc: sc.pname == pn) (attrValues scripts) else [ staticScript ];

              groupedGathers = listToAttrs (map (e: {
                name = e.producer;
                value =
                  let
                    p = acc.${e.producer};
                    common = filter (a: elem a p.axes) axs;
                  in
                  { inherit common; groups = groupBy (j: keyOf common j.combo) p.perCombo; };
              }) (filter (e: e.kind == "local" && e.gather) edges));
              inputsFor =
                combo:
                concatMap (
                  e:
                  let
                    upstream =
                      if e.kind == "run" then
                        let js = done.${e.run}.stages.${e.producer}.jobs; in
                        if e.gather || length js == 1 then js
                        else fail st.where "stage '${e.producer}' of run '${e.run}' has ${toString (length js)} jobs; consume it with repx.gather (repx.fromRun \"${e.run}\" \"${e.producer}\")"
                      else if e.gather then
                        let g = groupedGathers.${e.producer}; in g.groups.${keyOf g.common combo} or [ ]
                      else
                        [ acc.${e.producer}.byKey.${keyOf acc.${e.producer}.axes combo} ];
                    gather = e.gather || (e.kind == "run" && length upstream != 1);
                    fromRun = if e.kind == "run" then e.run else name;
                  in
                  concatMap (u: map (m: { name = m.input; job = u.id; output = m.output; run = fromRun; inherit gather; }) e.mapping) (uniqueJobs upstream)
                ) edges;
              # The job of one parameter combination (of a stage of either kind).
              mkJob =
                i: combo: params:
                let
                  var = elemAt variants i;
                  v = if st.isDynamic then var.v else staticVariant;
                  sc = if st.isDynamic then scripts.${var.key} else staticScript;
                  inputs = sort (a: b: canonicalInput a < canonicalInput b) (inputsFor combo);
                  # "params-only" (RepX's hashMode): the stage's name and version stand for
                  # its script, so package updates keep the ids.
                  identity = if hashMode == "pure" then sc.scriptPath else "params-only\t${v.pname}\t${v.version}";
                  ownLine = if ownIds && builtins.any (inp: inp.run == name) inputs then [ "run\t${name}" ] else [ ];
                  paramsJSON = toJSON params;
                  hash = util.hash32 (concatStringsSep "\n" ([ "repx-job/1" identity paramsJSON ] ++ environmentLines ++ map canonicalInput inputs ++ runInputLines ++ ownLine));
                  id = "${hash}-${v.pname}";
                  resources = if st.isDynamic then get.resources i else st.resources;
                in
                {
                  inherit id combo params paramsJSON inputs;
                  inherit (v) pname version outputs;
                  inherit (sc) check;
                  scriptDrv = sc.script.drv;
                  script = sc.scriptPath;
                  # lab.nix writes one bin/ wrapper per executable
                  inherit (sc) executables;
                  inherit resources;
                  outDirs = unique (map (o: builtins.dirOf (builtins.substring 5 100000 v.outputs.${o})) (attrNames v.outputs));
                  record = {
                    stage = v.pname;
                    stage_type = "simple";
                    inherit params inputs resources;
                    outputs = v.outputs;
                    executables.main.path = "jobs/${id}/bin/${v.pname}";
                    parameters_file = "jobs/${id}/parameters.json";
                  } // (if sg then {
                    stage_type = "scatter-gather";
                    executables = listToAttrs (map (e: { name = e.name; value.path = "jobs/${id}/bin/${e.name}"; }) sc.executables);
                    scatter_gather = st.record;
                  } else { }) // (if runInputs != [ ] then { run_inputs = runInputs; } else { });
                };
              # Several combinations can give one job (a value repeated in a sweep, a zip whose
              # rows agree on what this stage uses): one job, whichever combination reached it.
              perCombo = genList (i: mkJob i (elemAt combos i) (elemAt epList i)) (length combos);
              jobs = builtins.attrValues (listToAttrs (map (j: { name = j.id; value = j; }) perCombo));
              dependsOn = unique (map (e: if e.kind == "run" then "${e.run}/${e.producer}" else let p = acc.${e.producer}; in p.firstPname) edges);
              # The manifest's stages are pnames: a dynamic pname gives one entry per value.
              byPname = if st.isDynamic then groupBy (j: j.pname) jobs else { ${st.pname} = jobs; };
              pnames = if !st.isDynamic then [ st.pname ] else if blueprintMode && blueOk then unique (map (x: x.v.pname) blueVariants) else attrNames byPname;
              # A constant stage's attributes are the stage's own (no job is forced: the
              # blueprint path never expands jobs during evaluation; there expand-lab.py
              # writes the manifest's stages, from `blue`).
              entries = map (pn: let js = byPname.${pn}; j = if st.isDynamic && !(blueprintMode && blueOk) then head js else { inherit (st) pname version resources outputs; script = staticScript.scriptPath; }; in {
                pname = pn;
                jobs = js;
                outputs = shape.outputs;
                checks = map (sc: sc.check) (variantScripts pn);
                scriptDrvs = map (sc: sc.script.drv) (variantScripts pn);
                file = st.relFile;
                info = {
                  inherit (j) pname version resources;
                  outputs = j.outputs;
                  parameters = builtins.mapAttrs (_: scalar) st.parameters;
                  file = st.relFile;
                  script = j.script;
                  inputs = shape.inputNames;
                  depends_on = dependsOn;
                };
              }) pnames;
              # One variant of the stage in the blueprint: what its jobs of one pname, version,
              # outputs and resources share.
              blueOf = x:
                let
                  v = x.v;
                  sc = if st.isDynamic then scripts.${x.key} else staticScript;
                in
                {
                  inherit (v) pname;
                  identity = if hashMode == "pure" then sc.scriptPath else "params-only\t${v.pname}\t${v.version}";
                  # [ name script ] per executable (the jobs table's rows), and [ key name ]
                  # per entry of the record's `executables` (a simple stage's is "main")
                  executables = map (e: [ e.name e.script ]) sc.executables;
                  execKeys = if sg then map (e: [ e.name e.name ]) sc.executables else [ [ "main" v.pname ] ];
                  outDirs = concatStringsSep " " (unique (map (o: builtins.dirOf (builtins.substring 5 100000 v.outputs.${o})) (attrNames v.outputs)));
                  # the record's JSON around its inputs, parameters file and parameters
                  recordParts = [
                    '',"outputs":${toJSON v.outputs},"parameters_file":''
                    (concatStringsSep "" [
                      '',"resources":${toJSON x.resources}''
                      (if runInputs != [ ] then '',"run_inputs":${toJSON runInputs}'' else "")
                      (if sg then '',"scatter_gather":${toJSON st.record}'' else "")
                      '',"stage":${toJSON v.pname},"stage_type":${toJSON (if sg then "scatter-gather" else "simple")}}''
                    ])
                  ];
                  # the manifest's entry of the stage (that of its job with the lowest id)
                  info = toJSON {
                    inherit (v) pname version outputs;
                    inherit (x) resources;
                    parameters = builtins.mapAttrs (_: scalar) st.parameters;
                    file = st.relFile;
                    script = sc.scriptPath;
                    inputs = shape.inputNames;
                    depends_on = dependsOn;
                  };
                };
            in
            acc
            // {
              ${n} = {
                inherit perCombo entries;
                axes = axs;
                firstPname = if !st.isDynamic then st.pname else if blueprintMode && blueOk then (head blueVariants).v.pname else (head perCombo).pname;
                # The stage in the lab's blueprint (expand-lab.py expands it): constants and
                # each parameter's values rendered once per value, never per job.
                blue = {
                  attr = n;
                  where = st.where;
                  axes = axs;
                  axisRows = map (a: length (rowsOf a)) axs;
                  # [ keyJSON, position in axes, [ valueJSON per row ] ] in the order of the names
                  params = map (p: let k = keys.${p}; a = axisOfParam p; in [
                    (toJSON p)
                    (indexOf a axs)
                    (map (r: toJSON (effective st p r.${k})) (rowsOf a))
                  ]) st.paramNames;
                  edges = map (e: { inherit (e) kind producer gather; run = e.run or null; mapping = map (m: [ m.input m.output ]) e.mapping; }) edges;
                  runInputs = map (ri: [ ri.name ri.run ]) (filter (ri: ri.kind == "run_metadata") runInputs);
                  # the variants, and the positions in `axes` of the axes that select one
                  # (the last varies fastest)
                  variants = map blueOf blueVariants;
                  variantAxes = map (a: indexOf a axs) readAxes;
                };
                eligible = !st.isDynamic || blueOk;
                byKey = listToAttrs (map (j: { name = keyOf axs j.combo; value = j; }) perCombo);
              };
            };
          expanded = builtins.foldl' expandStage { } order;
        in
        {
          order = concatMap (n: map (e: e.pname) expanded.${n}.entries) order;
          entries = concatMap (n: expanded.${n}.entries) order;
          blue = map (n: expanded.${n}.blue) order;
          eligible = builtins.all (n: expanded.${n}.eligible) order;
        };

      expandedPipelines = genList (i: expandPipeline i (elemAt pipelines i)) (length pipelines);
      allEntries = concatMap (p: p.entries) expandedPipelines;
      stageNames = unique (map (e: e.pname) allEntries);
      # Stage names in topological order (pipeline by pipeline), for people reading listings.
      stageOrder = builtins.foldl' (acc: n: if elem n acc then acc else acc ++ [ n ]) [ ] (concatMap (p: p.order) expandedPipelines);
      stages = listToAttrs (map (s: {
        name = s;
        value =
          let
            parts = filter (e: e.pname == s) allEntries;
            files = unique (map (p: p.file) parts);
          in
          if length files > 1 then fail where "stages from different files (${showList files}) are all named '${s}'; give each its own pname"
          else
          { jobs = uniqueJobs (concatMap (p: p.jobs) parts); scriptDrvs = concatMap (p: p.scriptDrvs) parts; outputs = (head parts).outputs; checks = concatMap (p: p.checks) parts; info = (head parts).info; };
      }) stageNames);
      jobList = concatMap (s: s.jobs) (attrValues stages);
      jobs = listToAttrs (map (j: { name = j.id; value = j; }) jobList);
      hash = util.hash32 (toJSON { inherit name; jobs = attrNames jobs; deps = depNames; });
      # Store paths parameters depend on (RepX's parametersDependencies) travel with the lab.
      paramDepPaths = map (d: if isAttrs d || builtins.isPath d || isString d then d else fail where "'parametersDependencies' must list packages or paths") paramDeps
        # … and so do the packages a value names ("${pkgs.hello}/bin"): the store path of each.
        ++ util.uniqueBy toString (concatMap (v:
          let m = if isString v && builtins.hasContext v then builtins.match "(${builtins.storeDir}/[^/]+).*" v else null; in
          if m == null then [ ] else [ (builtins.appendContext (builtins.unsafeDiscardStringContext (head m)) (builtins.getContext v)) ]
        ) (concatMap (vs: vs) (attrValues runParameters)));
    in
    let result = {
      inherit name hash stages jobs stageOrder;
      # Jobs whose record names this run (an input from one of its own jobs): such a job
      # cannot be shared with another run, whose record would name that run instead.
      ownJobIds = map (j: j.id) (filter (j: builtins.any (inp: inp.run == name) j.inputs) jobList);
      checks = util.uniqueBy toString (concatMap (s: s.checks) (attrValues stages));
      scriptDrvs = util.uniqueBy toString (concatMap (s: s.scriptDrvs) (attrValues stages)) ++ paramDepPaths;
      parameters = runParameters;
      zipGroups = map (a: a.names) (filter (a: length a.names > 1) axes);
      # The blueprint of the run (lab.nix, expand-lab.py): its size is that of the definition.
      # Only for runs without dynamic or scatter-gather stages (`eligible`); the others are
      # expanded here, during evaluation.
      eligible = builtins.all (p: p.eligible) expandedPipelines;
      blueprint = {
        inherit name depNames stageOrder;
        environment = environmentLines;
        pipelines = map (p: p.blue) expandedPipelines;
        # (the manifest's stages are expand-lab.py's: a stage's entry is that of its job with
        # the lowest id; the check that no two files give one pname stays here)
        manifest = assert builtins.all (s: isAttrs stages.${s}) (attrNames stages);
          builtins.mapAttrs (_: toJSON) { inherit (result.manifest) parameters parameter_positions zip_groups; };
      };
      # The parameter values the run's jobs carry (their store paths are closure roots).
      valuesText = concatStringsSep "" (concatMap (p: concatMap (st: concatMap (x: elemAt x 2) st.params) p.blue) expandedPipelines);
      manifest = {
        format = "repx-run/1";
        inherit name hash;
        parameters = runParameters;
        # Where each parameter is written ("nix/run.nix:7"): repx build names the line of a
        # parameter no stage uses.
        parameter_positions =
          if !(isAttrs parameters) then { }
          else listToAttrs (concatMap (p:
            let pos = builtins.unsafeGetAttrPos p parameters; in
            if pos == null then [ ] else [ { name = p; value = "${util.relPath pos.file}:${toString pos.line}"; } ]
          ) (attrNames parameters));
        zip_groups = map (a: a.names) (filter (a: length a.names > 1) axes);
        stages = builtins.mapAttrs (_: s: s.info) stages;
        jobs = builtins.mapAttrs (_: j: j.record) jobs;
      };
    }; in result;
in
{
  inherit expandRun;
}
