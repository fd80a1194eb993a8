# Scatter-gather stages: a stage file with `scatter`, `steps` and `gather` instead of `run`.
#
# One job per parameter combination, as for a simple stage. At run time the scatter writes
# a JSON list of work items; each item becomes a branch that runs the step DAG (its own
# directory branch-N); the gather receives every branch's sink-step outputs and its outputs
# are the job's. Each piece is rendered and checked exactly as a simple stage script (the
# functions of stage.nix), so the runner calls every piece as <out> <inputs.json> <params>.
#
# The job record gains `scatter_gather` (see docs/lab-format.md): what the runner needs to
# wire pieces together without evaluating anything.
{ util, tools, simple }:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    elem
    filter
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    ;
  inherit (util) concatMap fail showList unique;

  # `params` is RepX's spelling of `parameters`; `passthru` is for the user's own use.
  stageKeys = [ "pname" "version" "description" "parameters" "params" "resources" "passthru" "scatter" "steps" "gather" ];
  pieceKeys = [ "pname" "inputs" "outputs" "runDependencies" "resources" "run" ];
  stepKeys = pieceKeys ++ [ "deps" "version" ];
  # Inputs and outputs the runner provides or reads, not paths of the job's upstream.
  itemInput = "worker__item";
  branchesInput = "worker__outs";
  itemsOutput = "work__items";
  itemShape = "worker__arg";

  namesOf =
    where: what: v:
    if isList v then v
    else if isAttrs v then attrNames v
    else fail where "${what}: 'inputs' must be a list of names or an attribute set";

  # A piece (scatter, a step, gather) normalised to what stage.nix renders and checks.
  loadPiece =
    { file, where, stage, label, spec, keys, outputsFilter ? (_: true) }:
    let
      pwhere = "${where}, ${label}";
      unknown = filter (k: !(elem k keys)) (attrNames spec);
      inputNames = namesOf pwhere label (spec.inputs or [ ]);
      outputsRaw = spec.outputs or { };
      outputs = listToAttrs (map (n: { name = n; value = outputsRaw.${n}; }) (filter outputsFilter (attrNames outputsRaw)));
      badOutputs = filter (n: !(isString outputs.${n}) || !(simple.validName n) || builtins.match "\\$out/.+" outputs.${n} == null || builtins.match "(.*/)?\\.\\.(/.*)?" outputs.${n} != null) (attrNames outputs);
      badInputs = filter (n: !(simple.validName n)) inputNames;
      runDependencies = spec.runDependencies or [ ];
      resourcesRaw = spec.resources or { };
      badResources = if isAttrs resourcesRaw then filter (k: !(elem k simple.hints.keys)) (attrNames resourcesRaw) else [ ];
      checked =
        if !(isAttrs spec) then fail where "${label} must be an attribute set"
        else if unknown != [ ] then fail pwhere "unknown attribute(s) ${showList unknown}; allowed: ${showList keys}"
        else if !(spec ? run) then fail pwhere "missing attribute 'run' (the script of this piece)"
        else if !(isAttrs outputsRaw) then fail pwhere "'outputs' must be an attribute set { \"name\" = \"$out/path\"; }"
        else if badOutputs != [ ] then fail pwhere "output(s) ${showList badOutputs}: names must be plain words and values of the form \"$out/<relative path>\""
        else if badInputs != [ ] then fail pwhere "input name(s) ${showList badInputs} must be plain words ([A-Za-z0-9_.+-])"
        else if !(isList runDependencies) then fail pwhere "'runDependencies' must be a list of packages"
        else if !(isAttrs resourcesRaw) then fail pwhere "'resources' must be an attribute set"
        else if badResources != [ ] then fail pwhere "unknown resource key(s) ${showList badResources}; allowed: ${showList simple.hints.keys}"
        else true;
    in
    assert checked;
    {
      inherit file inputNames outputs runDependencies spec;
      where = pwhere;
      pname = "${stage.pname}-${label}";
      version = stage.version;
      relFile = stage.relFile;
      paramNames = stage.paramNames;
      resources = simple.hints.normalise fail pwhere resourcesRaw;
      body = simple.bodyLine file spec;
    };

  # The loader of stage kind "scatter-gather" (stage.nix's loaders); the same arguments.
  load =
    { file, spec, where0, ... }:
    let
      # The per-job attributes (functions { parameters }: …) of simple stages are not
      # offered here: one set of pieces serves every job of the stage.
      dynamic = filter (k: builtins.isFunction (spec.${k} or null)) [ "pname" "version" "resources" ];
      pname =
        if dynamic != [ ] then fail where0 "a scatter-gather stage takes constant ${showList dynamic} (a function { parameters }: … is only accepted by stages with 'run')"
        else spec.pname or (fail where0 "a stage needs 'pname'");
      where = "${where0} (scatter-gather stage ${pname})";
      unknown = filter (k: !(elem k stageKeys)) (attrNames spec);
      missing = filter (k: !(spec ? ${k})) [ "scatter" "steps" "gather" ];
      parameters = spec.parameters or spec.params or { };
      version = toString (spec.version or "1.0");
      stepsRaw = spec.steps;
      stepNames = attrNames stepsRaw;
      checkedStage =
        if unknown != [ ] then fail where "unknown attribute(s) ${showList unknown}; allowed: ${showList stageKeys}"
        else if missing != [ ] then fail where "a scatter-gather stage needs 'scatter', 'steps' and 'gather' (missing ${showList missing})"
        else if !(simple.validName pname) then fail where0 "pname '${pname}' must be a plain word ([A-Za-z0-9_.+-])"
        else if !(simple.validName version) then fail where "version '${version}' must be a plain word ([A-Za-z0-9_.+-])"
        else if !(isAttrs parameters) then fail where "'parameters' must be an attribute set of defaults"
        else if !(isAttrs stepsRaw) || stepNames == [ ] then fail where "'steps' must be a non-empty attribute set { name = { … }; }"
        else if filter (n: !(simple.validName n)) stepNames != [ ] then fail where "step name(s) ${showList (filter (n: !(simple.validName n)) stepNames)} must be plain words"
        else true;
      stage = { inherit pname version; relFile = where0; paramNames = attrNames parameters; };
      piece = label: pspec: keys: extra: loadPiece ({ inherit file where stage label keys; spec = pspec; } // extra);

      scatter = piece "scatter" spec.scatter pieceKeys { outputsFilter = n: n != itemShape; };
      gather = piece "gather" spec.gather pieceKeys { };
      steps = listToAttrs (map (n: { name = n; value = piece "step-${n}" stepsRaw.${n} stepKeys { }; }) stepNames);

      # A step's dependency names another step by value (as in RepX: `deps = [ extract ]`
      # with `steps = { inherit extract; }`), alone or as [ STEP "output" "input" ].
      stepOf =
        swhere: d:
        let
          found = filter (n: stepsRaw.${n} == d) stepNames;
          byPname = filter (n: isAttrs d && d ? pname && (stepsRaw.${n}.pname or null) == d.pname) stepNames;
        in
        if found != [ ] then head found
        else if byPname != [ ] then head byPname
        else fail swhere "a dependency is not one of this stage's steps (${showList stepNames}); list the step itself, e.g. deps = [ ${head stepNames} ];";
      depsOf =
        n:
        let
          s = steps.${n};
          raw = stepsRaw.${n}.deps or [ ];
          one =
            d:
            if isList d then
              if length d == 3 && isString (builtins.elemAt d 1) && isString (builtins.elemAt d 2) then { step = stepOf s.where (head d); mapping = [ { output = builtins.elemAt d 1; input = builtins.elemAt d 2; } ]; }
              else if length d == 2 && isString (builtins.elemAt d 1) then { step = stepOf s.where (head d); mapping = [ { output = builtins.elemAt d 1; input = builtins.elemAt d 1; } ]; }
              else fail s.where "a list dependency must be [ STEP \"output\" \"input\" ] or [ STEP \"name\" ]"
            else { step = stepOf s.where d; mapping = null; };
        in
        if !(isList raw) then fail s.where "'deps' must be a list of steps" else map one raw;
      deps = listToAttrs (map (n: { name = n; value = depsOf n; }) stepNames);
      depNames = n: unique (map (d: d.step) deps.${n});
      order = util.toposort stepNames depNames (cycle: fail where "cyclic step dependencies: ${concatStringsSep " -> " cycle}");
      sinks = filter (n: !(builtins.any (m: elem n (depNames m)) stepNames)) stepNames;
      roots = filter (n: deps.${n} == [ ]) stepNames;

      scatterOutputs = attrNames (builtins.removeAttrs scatter.outputs [ itemsOutput ]);

      # Where each input of a step comes from: another step of the branch, the branch's
      # work item, or an input of the stage (an upstream job's output).
      stepInputs =
        n:
        let
          s = steps.${n};
          fromDeps = concatMap (
            d:
            let
              producer = steps.${d.step};
              implicit = map (o: { output = o; input = o; }) (filter (o: elem o s.inputNames) (attrNames producer.outputs));
              mapping =
                if d.mapping != null then d.mapping
                else if implicit == [ ] then fail s.where "no output of step '${d.step}' (${showList (attrNames producer.outputs)}) matches an input of this step (${showList s.inputNames}); name them: [ ${d.step} \"output\" \"input\" ]"
                else implicit;
              badOut = filter (m: !(producer.outputs ? ${m.output})) mapping;
              badIn = filter (m: !(elem m.input s.inputNames)) mapping;
            in
            if badOut != [ ] then fail s.where "step '${d.step}' has no output '${(head badOut).output}' (outputs: ${showList (attrNames producer.outputs)})"
            else if badIn != [ ] then fail s.where "has no input '${(head badIn).input}' (inputs: ${showList s.inputNames})"
            else map (m: { name = m.input; value = { from = "step"; step = d.step; output = m.output; }; }) mapping
          ) deps.${n};
          covered = map (x: x.name) fromDeps;
          rest = filter (i: !(elem i covered)) s.inputNames;
          twice = filter (i: length (filter (c: c == i) covered) > 1) s.inputNames;
        in
        if twice != [ ] then fail s.where "input(s) ${showList twice} provided by more than one step"
        else listToAttrs (fromDeps ++ map (i: { name = i; value = if i == itemInput then { from = "item"; } else { from = "stage"; input = i; }; }) rest);

      gatherInputs = listToAttrs (map (i: {
        name = i;
        value =
          if i == branchesInput then { from = "branches"; }
          else if elem i scatterOutputs then { from = "scatter"; output = i; }
          else { from = "stage"; input = i; };
      }) gather.inputNames);

      stageInputNames = unique (
        scatter.inputNames
        ++ concatMap (n: map (x: x.input) (filter (x: x.from == "stage") (builtins.attrValues (stepInputs n)))) stepNames
        ++ map (x: x.input) (filter (x: x.from == "stage") (builtins.attrValues gatherInputs))
      );
      badItemInput = filter (i: i == itemInput || i == branchesInput) scatter.inputNames;
      checked =
        # the order first: a cycle is the clearest message when there is one
        builtins.seq order (
        if !(scatter.outputs ? ${itemsOutput}) then fail scatter.where "the scatter must declare the output \"${itemsOutput}\" = \"$out/work_items.json\"; (the JSON list of work items it writes)"
        else if !(gather.outputs != { }) then fail gather.where "the gather must declare the stage's outputs"
        else if !(elem branchesInput gather.inputNames) then fail gather.where "the gather must declare the input \"${branchesInput}\" (the JSON list of every branch's outputs)"
        else if badItemInput != [ ] then fail scatter.where "the scatter cannot take ${showList badItemInput} (the runner provides them to steps and the gather)"
        else if length sinks != 1 then fail where "the steps must end in exactly one sink step (a step no other step depends on); found ${showList sinks}"
        else if !(builtins.any (n: elem itemInput steps.${n}.inputNames) roots) then fail where "a root step (${showList roots}) must declare the input \"${itemInput}\" (the path of its branch's work item)"
        else if elem branchesInput (concatMap (n: steps.${n}.inputNames) stepNames) then fail where "steps cannot take \"${branchesInput}\" (only the gather receives it)"
        else true);
      itemsRel = builtins.substring 5 100000 scatter.outputs.${itemsOutput};
    in
    assert checkedStage;
    assert checked;
    rec {
      # What expand.nix reads of every stage record (see stage.nix's loadSimple): nothing is
      # dynamic, so `dyn` holds constants and `checks` (applied to dynamic results) is unused.
      kind = "scatter-gather";
      isDynamic = false;
      dyn = builtins.mapAttrs (_: v: { value = v; }) { inherit pname version outputs resources; inputs = inputNames; };
      checks = builtins.mapAttrs (_: _: v: v) dyn;
      inherit file pname version parameters spec where;
      relFile = where0;
      inputNames = stageInputNames;
      outputs = gather.outputs;
      paramNames = attrNames parameters;
      resources = simple.hints.normalise fail where (if isAttrs (spec.resources or { }) then spec.resources or { } else fail where "'resources' must be an attribute set");
      runDependencies = [ ];
      pieces = [ { name = "scatter"; st = scatter; } ] ++ map (n: { name = "step-${n}"; st = steps.${n}; }) order ++ [ { name = "gather"; st = gather; } ];
      record = {
        work_items = itemsRel;
        scatter = { inputs = scatter.inputNames; outputs = scatter.outputs; resources = scatter.resources; };
        steps = listToAttrs (map (n: {
          name = n;
          value = { deps = depNames n; inputs = stepInputs n; outputs = steps.${n}.outputs; resources = steps.${n}.resources; };
        }) stepNames);
        step_order = order;
        sink = head sinks;
        gather = { inputs = gatherInputs; resources = gather.resources; };
      };
    };

  # Every piece rendered as a simple stage script; one derivation gathers them under bin/
  # (links), so the stage still has one script derivation and one path in its job ids.
  mkScript =
    pkgs: st:
    let
      rendered = map (p: p // { script = simple.mkScript pkgs p.st; }) st.pieces;
      links = concatStringsSep "\n" (map (p: "ln -s ${p.script.drv}/bin/${p.st.pname} \"$out/bin/${p.name}\"") rendered);
      drv = derivation {
        name = "repx-stage-${st.pname}-${st.version}";
        system = tools.system;
        builder = "${tools.bash}/bin/bash";
        PATH = "${tools.coreutils}/bin";
        # Ends with a builtin (see stage.nix's mkScript: Nix 2.8 kills a builder whose log
        # pipe a last external command closed).
        args = [ "-c" "mkdir -p \"$out/bin\"\n${links}\nexit 0" ];
      };
    in
    {
      inherit drv rendered;
      # The job id covers every piece's script (through the one derivation's path).
      path = "${drv}";
      executables = map (p: { name = p.name; script = "${p.script.drv}/bin/${p.st.pname}"; }) rendered;
    };

  # The checks of every piece, as one derivation (building it builds them all).
  mkCheck =
    pkgs: st: script: severity:
    let
      checks = map (p: simple.mkCheck pkgs p.st p.script severity) script.rendered;
    in
    derivation {
      name = "repx-check-${st.pname}-${st.version}";
      system = tools.system;
      builder = "${tools.bash}/bin/bash";
      PATH = "${tools.coreutils}/bin";
      checks = map toString checks;
      args = [ "-c" ": > \"$out\"" ];
    };
in
{
  inherit load mkScript mkCheck;
}
