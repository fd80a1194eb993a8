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

  runKeys = [ "name" "pipelines" "parameters" "description" ];

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
    else if builtins.isList x then builtins.all (checkValue where p) x
    else if isAttrs x && !(x ? outPath) then builtins.all (k: checkValue where p x.${k}) (attrNames x)
    else true;

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
          { names = v.names; rows = v.rows; }
        else if isList v && v != [ ] then
          { names = [ p ]; rows = map (x: { ${p} = x; }) v; }
        else
          fail where "parameter '${p}' must be a non-empty list of values, e.g. ${p} = [ 1 2 3 ]; (use [ null ] for a parameter that is not needed)"
      ) (attrNames parameters);
      names = concatMap (a: a.names) axes;
      twice = filter (n: length (filter (m: m == n) names) > 1) (unique names);
      valid = builtins.all (a: builtins.all (r: builtins.all (n: checkValue where n r.${n}) a.names) a.rows) axes;
    in
    if twice != [ ] then fail where "parameter(s) ${showList twice} given more than once (directly and in a repx.zip, or in two zips)"
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

  uniqueJobs = js: builtins.attrValues (listToAttrs (map (j: { name = j.id; value = j; }) js));

  canonicalInput = i: concatStringsSep "\t" [ i.name i.job i.output (if i.gather then "g" else "") ];

  expandRun =
    {
      run, # the callRun value
      done, # name -> result of expandRun for runs this run depends on
    }:
    let
      spec = run.spec;
      name = run.name;
      where = "${util.relPath run.file} (run ${name})";
      unknownKeys = filter (k: !(elem k runKeys)) (attrNames spec);
      pipelines = spec.pipelines or (fail where "missing attribute 'pipelines' (a list of pipeline files)");
      parameters = spec.parameters or { };
      axes =
        if unknownKeys != [ ] then fail where "unknown attribute(s) ${showList unknownKeys}; allowed: ${showList runKeys}"
        else if !(isAttrs parameters) then fail where "'parameters' must be an attribute set of lists"
        else if !(isList pipelines) || pipelines == [ ] then fail where "'pipelines' must be a non-empty list of pipeline files"
        else axesOf where parameters;
      axisIds = genList toString (length axes);
      axisOf = listToAttrs (concatMap (i: map (p: { name = p; value = toString i; }) (elemAt axes i).names) (genList (i: i) (length axes)));
      rowsOf = a: (elemAt axes (builtins.fromJSON a)).rows;
      runParameters = listToAttrs (concatMap (ax: map (p: { name = p; value = map (r: r.${p}) ax.rows; }) ax.names) axes);
      depNames = map (d: d.run.name) run.deps;

      keyOf = axs: combo: concatStringsSep "," (map (a: "${a}:${toString combo.${a}}") axs);

      expandPipeline =
        pipeFile:
        let
          pwhere = "${util.relPath pipeFile} (run ${name})";
          pipe = util.callWith { repx = run.api; } (import pipeFile);
          nodes =
            if isType "__repxPipe" pipe then pipe.stages
            else fail pwhere "a pipeline file must return repx.mkPipe { … }";
          loaded = map (n: { node = nodes.${n}; st = stageLib.load pkgs nodes.${n}; }) (attrNames nodes);
          byName = listToAttrs (map (l: { name = l.st.pname; value = l; }) loaded);
          dupNames = filter (n: length (filter (l: l.st.pname == n) loaded) > 1) (attrNames byName);
          nodeName = node: (stageLib.load pkgs node).pname;

          # Resolve the dependencies of one stage into edges with explicit mappings.
          edgesOf =
            l:
            let
              st = l.st;
              resolve =
                d:
                let
                  producer =
                    if d.kind == "local" then
                      let pn = nodeName d.node; in
                      if byName ? ${pn} then { outputs = byName.${pn}.st.outputs; label = "stage ${pn}"; name = pn; }
                      else fail st.where "depends on stage '${pn}', which is not part of this pipeline (stages: ${showList (attrNames byName)})"
                    else
                      let
                        other = done.${d.run} or (fail st.where "uses run '${d.run}', which is not a dependency of run '${name}' (add it to the callRun dependencies)");
                      in
                      if other.stages ? ${d.stage} then { outputs = other.stages.${d.stage}.outputs; label = "stage ${d.stage} of run ${d.run}"; name = d.stage; }
                      else fail st.where "run '${d.run}' has no stage '${d.stage}' (stages: ${showList (attrNames other.stages)})";
                  implicit = map (o: { output = o; input = o; }) (filter (o: elem o st.inputNames) (attrNames producer.outputs));
                  mapping =
                    if d.mapping != null then d.mapping
                    else if implicit == [ ] then fail st.where "implicit dependency resolution failed: no output of ${producer.label} (${showList (attrNames producer.outputs)}) matches an input of this stage (${showList st.inputNames}); name them explicitly: [ STAGE \"output\" \"input\" ]"
                    else implicit;
                  badOut = filter (m: !(producer.outputs ? ${m.output})) mapping;
                  badIn = filter (m: !(elem m.input st.inputNames)) mapping;
                in
                if badOut != [ ] then fail st.where "${producer.label} has no output '${(head badOut).output}' (outputs: ${showList (attrNames producer.outputs)})"
                else if badIn != [ ] then fail st.where "has no input '${(head badIn).input}' (inputs: ${showList st.inputNames})"
                else d // { inherit mapping; producer = producer.name; };
              edges = map (d: resolve (normaliseDep st.where d)) l.node.deps;
              covered = concatMap (e: map (m: m.input) e.mapping) edges;
              unresolved = filter (i: !(elem i covered)) st.inputNames;
              twice = filter (i: length (filter (c: c == i) covered) > 1) st.inputNames;
            in
            if unresolved != [ ] then fail st.where "unresolved input(s) ${showList unresolved}: add a dependency that provides them"
            else if twice != [ ] then fail st.where "input(s) ${showList twice} provided by more than one dependency"
            else edges;

          withEdges = map (l: l // { edges = edgesOf l; }) loaded;
          edgesByName = listToAttrs (map (l: { name = l.st.pname; value = l; }) withEdges);
          order =
            if dupNames != [ ] then fail pwhere "two stages share the pname ${showList dupNames}"
            else util.toposort (attrNames edgesByName)
              (n: map (e: e.producer) (filter (e: e.kind == "local") edgesByName.${n}.edges))
              (cycle: fail pwhere "cyclic stage dependencies: ${concatStringsSep " -> " cycle}");

          # Expand stages in topological order; acc.<pname> = { axes; jobs; byKey; outputs }.
          expandStage =
            acc: pn:
            let
              l = edgesByName.${pn};
              st = l.st;
              script = stageLib.mkScript pkgs st;
              scriptPath = "${script.drv}/bin/${st.pname}";
              own = map (p: axisOf.${p} or (fail st.where "parameter '${p}' is not provided by run '${name}' (its parameters: ${showList (attrNames runParameters)}); add ${p} = [ … ]; to the run (use [ null ] if it is not needed)")) st.paramNames;
              inherited = concatMap (e: if e.kind == "local" && !e.gather then acc.${e.producer}.axes else [ ]) l.edges;
              axs = unique (own ++ inherited);
              combos = util.product (map (a: genList (r: { ${a} = r; }) (length (rowsOf a))) axs);
              groupedGathers = listToAttrs (map (e: {
                name = e.producer;
                value =
                  let
                    p = acc.${e.producer};
                    common = filter (a: elem a p.axes) axs;
                  in
                  { inherit common; groups = groupBy (j: keyOf common j.combo) p.perCombo; };
              }) (filter (e: e.kind == "local" && e.gather) l.edges));
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
                ) l.edges;
              mkJob =
                combo:
                let
                  params = listToAttrs (map (p: { name = p; value = (elemAt (rowsOf axisOf.${p}) combo.${axisOf.${p}}).${p}; }) st.paramNames);
                  inputs = sort (a: b: canonicalInput a < canonicalInput b) (inputsFor combo);
                  hash = util.hash32 (concatStringsSep "\n" ([ "repx-job/1" scriptPath (toJSON params) ] ++ environmentLines ++ map canonicalInput inputs));
                  id = "${hash}-${st.pname}";
                in
                {
                  inherit id combo params inputs;
                  pname = st.pname;
                  script = scriptPath;
                  outDirs = unique (map (o: builtins.dirOf (builtins.substring 5 100000 st.outputs.${o})) (attrNames st.outputs));
                  record = {
                    stage = st.pname;
                    stage_type = "simple";
                    inherit params inputs;
                    outputs = st.outputs;
                    executables.main.path = "jobs/${id}/bin/${st.pname}";
                    parameters_file = "jobs/${id}/parameters.json";
                    resources = st.resources;
                  };
                };
              # Several combinations can give one job (a value repeated in a sweep, a zip whose
              # rows agree on what this stage uses): one job, whichever combination reached it.
              perCombo = map mkJob combos;
              jobs = builtins.attrValues (listToAttrs (map (j: { name = j.id; value = j; }) perCombo));
            in
            acc
            // {
              ${pn} = {
                inherit jobs perCombo;
                axes = axs;
                scriptDrv = script.drv;
                byKey = listToAttrs (map (j: { name = keyOf axs j.combo; value = j; }) perCombo);
                outputs = st.outputs;
                check = stageLib.mkCheck pkgs st script severity;
                info = {
                  inherit (st) pname version outputs parameters resources;
                  file = st.relFile;
                  script = scriptPath;
                  inputs = st.inputNames;
                  depends_on = unique (map (e: if e.kind == "run" then "${e.run}/${e.producer}" else e.producer) l.edges);
                };
              };
            };
        in
        { inherit order; stages = builtins.foldl' expandStage { } order; };

      expandedPipelines = map expandPipeline pipelines;
      perPipeline = map (p: p.stages) expandedPipelines;
      stageNames = unique (concatMap attrNames perPipeline);
      # Stage names in topological order (pipeline by pipeline), for people reading listings.
      stageOrder = builtins.foldl' (acc: n: if elem n acc then acc else acc ++ [ n ]) [ ] (concatMap (p: p.order) expandedPipelines);
      stages = listToAttrs (map (s: {
        name = s;
        value =
          let
            parts = concatMap (p: if p ? ${s} then [ p.${s} ] else [ ]) perPipeline;
            scripts = unique (map (p: builtins.unsafeDiscardStringContext p.info.script) parts);
            files = unique (map (p: p.info.file) parts);
          in
          if length scripts > 1 then fail where "two pipelines define a stage '${s}' with different scripts (${showList files}); give one of them another pname"
          else
          { jobs = uniqueJobs (concatMap (p: p.jobs) parts); scriptDrvs = map (p: p.scriptDrv) parts; outputs = (head parts).outputs; checks = map (p: p.check) parts; info = (head parts).info; };
      }) stageNames);
      jobList = concatMap (s: s.jobs) (attrValues stages);
      jobs = listToAttrs (map (j: { name = j.id; value = j; }) jobList);
      hash = util.hash32 (toJSON { inherit name; jobs = attrNames jobs; deps = depNames; });
    in
    {
      inherit name hash stages jobs stageOrder;
      checks = concatMap (s: s.checks) (attrValues stages);
      scriptDrvs = concatMap (s: s.scriptDrvs) (attrValues stages);
      parameters = runParameters;
      zipGroups = map (a: a.names) (filter (a: length a.names > 1) axes);
      manifest = {
        format = "repx-run/1";
        inherit name hash;
        parameters = runParameters;
        zip_groups = map (a: a.names) (filter (a: length a.names > 1) axes);
        stages = builtins.mapAttrs (_: s: s.info) stages;
        jobs = builtins.mapAttrs (_: j: j.record) jobs;
      };
    };
in
{
  inherit expandRun;
}
