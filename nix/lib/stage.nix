# A stage file: validation, its script derivation and its build-time check derivation.
#
# One derivation renders the script (its out path feeds every job id of the stage), a
# second one runs ShellCheck and the dependency analysis on it. The check is separate so
# that the stage file's name, which only matters for messages, never changes a job id.
{ util, tools }:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    isAttrs
    isList
    isString
    length
    listToAttrs
    match
    ;
  inherit (util) fail showList;

  # `params` is how RepX's documentation spells `parameters`; `passthru` is accepted and
  # ignored (RepX hands it to its script derivation; nothing here reads it).
  allowedKeys = [ "pname" "version" "description" "inputs" "outputs" "parameters" "params" "runDependencies" "resources" "run" "passthru" ];
  resourceKeys = hints.keys;
  scatterGatherKeys = [ "scatter" "steps" "gather" ];
  # The attributes that may be functions `{ parameters }: …`, resolved per job (expand.nix's
  # `resolver` evaluates them once per distinct value of the parameters they read).
  dynamicKeys = [ "pname" "version" "inputs" "outputs" "resources" ];

  # Commands every job gets, whatever its runDependencies (as RepX users expect).
  baseTools = with tools; [ bash coreutils findutils gnused gnugrep gawk jq ];

  binPath = pkgs: concatStringsSep ":" (map (p: "${p}/bin") pkgs);

  validName = n: match "[A-Za-z0-9_][A-Za-z0-9_.+-]*" n != null;

  # Scheduling hints: one grammar, checked and normalised at build time (see resources.nix).
  hints = import ./resources.nix;

  # The line of the stage file where the body of `run` starts: the line after the one
  # holding the opening '' of the indented string. 0 when it cannot be told.
  bodyLine =
    file: spec:
    let
      pos = builtins.unsafeGetAttrPos "run" spec;
      lines = filter isString (builtins.split "\n" (builtins.readFile file));
      n = length lines;
      find = i: if i >= n then 0 else if match ".*''[[:space:]]*$" (builtins.elemAt lines i) != null then i + 2 else find (i + 1);
      line = if pos == null || !(builtins.isPath file) then 0 else find (pos.line - 1);
      indent = if line == 0 || line > n then 0 else builtins.stringLength (builtins.head (match "([[:space:]]*).*" (builtins.elemAt lines (line - 1))));
    in
    { inherit line indent; };

  # What stage, run and pipeline files may ask for: `pkgs` and every attribute of it (as
  # with nixpkgs' callPackage, so `{ pkgs }`, `{ stdenv, python3 }` and `_:` all work).
  fileArgs = pkgs: extra: (if isAttrs pkgs then pkgs else { }) // { inherit pkgs; } // extra;

  # A dynamic attribute: a function taking exactly { parameters } (or RepX's documented
  # { params }). Returns { fn = parameters -> value; } or { value; } for a constant.
  dynamicAttr =
    where: name: v:
    if !(builtins.isFunction v) then { value = v; }
    else
      let
        args = builtins.functionArgs v;
        argNames = attrNames args;
      in
      if argNames == [ "parameters" ] then { fn = ps: v { parameters = ps; }; }
      else if argNames == [ "params" ] then { fn = ps: v { params = ps; }; }
      else fail where "'${name}' is a function, so it must take exactly { parameters } (it takes ${if argNames == [ ] then "a plain argument" else showList argNames}), e.g. ${name} = { parameters }: …;";

  # The kind of a stage decides how it is loaded and expanded: "simple" (one script per
  # job) here; "scatter-gather" (`scatter`, `steps`, `gather`) is a separate module.
  stageKind = spec: if builtins.any (k: spec ? ${k}) scatterGatherKeys then "scatter-gather" else "simple";

  load =
    pkgs: node:
    let
      file = node.file;
      # callStage accepts a function instead of a file; messages then name the pipeline.
      where0 = if builtins.isFunction file then "${node.where or "pipeline"} (stage function)" else util.relPath file;
      raw = if builtins.isFunction file then file else import file;
      spec = util.callWith (fileArgs pkgs { }) raw;
      kind = if isAttrs spec then stageKind spec else fail where0 "a stage file must give an attribute set { pname = …; run = …; }";
    in
    loaders.${kind} { inherit file where0 spec; };

  # One loader per stage kind. Each returns the record expand.nix works with (`kind`,
  # `pname`, `inputNames`, `outputs`, `parameters`, `dyn`, `checks`, …); expand.nix turns
  # either kind into one job per parameter combination, rendering a "scatter-gather"
  # record's pieces with scatter.nix's mkScript/mkCheck.
  loaders = {
    simple = loadSimple;
    "scatter-gather" = scatterLib.load;
  };

  # Check one value of `inputs` / `outputs` / `pname` / `version` / `resources` (static, or
  # one result of a dynamic attribute) and normalise it.
  checkInputs =
    where: v:
    let
      names =
        if isList v && builtins.all isString v then v
        else if isAttrs v then attrNames v
        else fail where "'inputs' must be a list of names or an attribute set { name = \"\"; }";
      bad = filter (n: !(validName n)) names;
    in
    if bad != [ ] then fail where "input name(s) ${showList bad} must be plain words ([A-Za-z0-9_.+-])" else names;
  checkOutputs =
    where: outputs:
    let
      bad = filter (n: !(validName n) || !(isString outputs.${n}) || match "\\$out/.+" outputs.${n} == null || match "(.*/)?\\.\\.(/.*)?" outputs.${n} != null) (attrNames outputs);
    in
    if !(isAttrs outputs) then fail where "'outputs' must be an attribute set { \"name\" = \"$out/path\"; }"
    else if bad != [ ] then fail where "output(s) ${showList bad}: names must be plain words and values of the form \"$out/<relative path>\""
    else outputs;
  checkPname = where0: p:
    if !(isString p) then fail where0 "'pname' must be a string (or a function { parameters }: … giving one)"
    else if !(validName p) then fail where0 "pname '${p}' must be a plain word ([A-Za-z0-9_.+-])" else p;
  checkVersion = where: v:
    let s = toString v; in
    if !(isString v || builtins.isInt v || builtins.isFloat v) || !(validName s) then fail where "version '${s}' must be a plain word ([A-Za-z0-9_.+-])" else s;
  checkResources = where: r:
    let
      raw = if r == null then { } else r;
      bad = if isAttrs raw then filter (k: !(builtins.elem k resourceKeys)) (attrNames raw) else [ ];
    in
    if !(isAttrs raw) then fail where "'resources' must be an attribute set"
    else if bad != [ ] then fail where "unknown resource key(s) ${showList bad}; allowed: ${showList resourceKeys}"
    else hints.normalise fail where raw;

  loadSimple =
    { file, where0, spec }:
    let
      dyn = listToAttrs (map (k: { name = k; value = dynamicAttr where0 k (spec.${k} or defaults.${k}); }) dynamicKeys);
      defaults = { pname = fail where0 "a stage needs 'pname'"; version = "1.0"; inputs = [ ]; outputs = { }; resources = { }; };
      # The name messages use: the pname, or for a dynamic pname the file alone.
      staticPname = dyn.pname.value or null;
      where = if staticPname == null then "${where0} (stage with a dynamic pname)" else "${where0} (stage ${toString staticPname})";
      unknown = filter (k: !(builtins.elem k allowedKeys)) (attrNames spec);
      parameters =
        if spec ? parameters && spec ? params then fail where "give either 'parameters' or 'params', not both"
        else spec.parameters or spec.params or { };
      badParams = filter (n: !(validName n)) (attrNames parameters);
      runDependencies = spec.runDependencies or [ ];
      # What each attribute checks, applied to a constant here and to every distinct
      # result of a dynamic attribute by the expansion.
      checks = {
        pname = checkPname where0;
        version = checkVersion where;
        inputs = checkInputs where;
        outputs = checkOutputs where;
        resources = checkResources where;
      };
      checked =
        if unknown != [ ] then fail where "unknown attribute(s) ${showList unknown}; allowed: ${showList allowedKeys}"
        else if !(spec ? run) then fail where "missing attribute 'run' (the stage script)"
        else if !(isAttrs parameters) then fail where "'parameters' must be an attribute set of defaults"
        else if badParams != [ ] then fail where "parameter name(s) ${showList badParams} must be plain words"
        else if !(isList runDependencies) then fail where "'runDependencies' must be a list of packages"
        else true;
      # Constant attributes, checked once; dynamic ones are null here.
      static = builtins.mapAttrs (k: d: if d ? value then checks.${k} d.value else null) dyn;
    in
    assert checked;
    {
      kind = "simple";
      inherit file parameters runDependencies spec where checks dyn;
      relFile = where0;
      inherit (static) pname outputs;
      inputNames = static.inputs;
      version = static.version;
      # The lab carries the normalised hints (mem in MiB, time in minutes).
      resources = static.resources;
      isDynamic = builtins.any (k: dyn.${k} ? fn) dynamicKeys;
      paramNames = attrNames parameters;
      body = bodyLine file spec;
    };

  # Render the job script. Inputs and parameters become bash references resolved at run
  # time from the JSON files the runner passes, so one script serves every job of the stage.
  mkScript =
    pkgs: st:
    let
      refs = prefix: names: listToAttrs (map (n: { name = n; value = "\${${prefix}[${n}]}"; }) names);
      paramRefs = refs "PARAMS" st.paramNames;
      body =
        if builtins.isFunction st.spec.run then
          util.callWith {
            inherit pkgs;
            inputs = refs "INPUTS" st.inputNames;
            parameters = paramRefs;
            params = paramRefs;
            outputs = st.outputs;
          } st.spec.run
        else fail st.where "'run' must be a function { inputs, outputs, parameters, ... }: '' … '' giving the script body (a plain ${builtins.typeOf st.spec.run} is refused, as in RepX)";
      preamble = [
        "#!${tools.bash}/bin/bash"
        "# repx stage ${st.pname} ${st.version}: called as <out-dir> <inputs.json> <parameters.json>"
        "set -euo pipefail"
        "export PATH=${binPath (baseTools ++ st.runDependencies)}"
        "if [ \"$#\" -ne 3 ]; then echo \"usage: $0 OUT_DIR INPUTS_JSON PARAMETERS_JSON\" >&2; exit 2; fi"
        "out=$1 inputs_json=$2 parameters_json=$3"
        "declare -A INPUTS=() PARAMS=()"
        "# NUL-separated so that values with newlines, quotes or $( ) arrive intact"
        "while IFS= read -r -d '' k && IFS= read -r -d '' v; do INPUTS[$k]=$v; done < <(jq -j 'to_entries[] | .key, \"\\u0000\", (.value | if type == \"string\" then . else tojson end), \"\\u0000\"' \"$inputs_json\")"
        "while IFS= read -r -d '' k && IFS= read -r -d '' v; do PARAMS[$k]=$v; done < <(jq -j 'to_entries[] | .key, \"\\u0000\", (.value | if type == \"string\" then . else tojson end), \"\\u0000\"' \"$parameters_json\")"
        "# Read once here so that ShellCheck does not flag them as unused in stages that ignore them."
        ": \"$out\" \"$inputs_json\" \"$parameters_json\" \"\${#INPUTS[@]}\" \"\${#PARAMS[@]}\""
        "mkdir -p \"$out\""
        "cd \"$out\""
      ];
      text = concatStringsSep "\n" preamble + "\n" + (if isString body then body else fail st.where "'run' must give a string (the script body)") + "\n";
    in
    {
      preambleLines = length preamble;
      bodyLines = length (filter isString (builtins.split "\n" body));
      drv = derivation {
        name = "repx-stage-${st.pname}-${st.version}";
        system = tools.system;
        builder = "${tools.bash}/bin/bash";
        PATH = binPath [ tools.coreutils ];
        inherit text;
        passAsFile = [ "text" ];
        # Ends with a builtin: bash -c runs a last external command in its own place, and GNU
        # chmod closes stdout and stderr before it exits; Nix (2.8) takes the closed log pipe
        # for the builder's end and kills it ("failed due to signal 9", 1 build in 5 here).
        args = [ "-c" "mkdir -p \"$out/bin\" && cp \"$textPath\" \"$out/bin/${st.pname}\" && chmod 555 \"$out/bin/${st.pname}\" && exit 0" ];
      };
    };

  scatterLib = import ./scatter.nix {
    inherit util tools;
    simple = { inherit mkScript mkCheck bodyLine validName hints; };
  };

  # ShellCheck + dependency analysis of a rendered script; its output is an empty marker.
  mkCheck =
    pkgs: st: script: severity:
    derivation {
      name = "repx-check-${st.pname}-${st.version}";
      system = tools.system;
      builder = "${tools.bash}/bin/bash";
      checker = ./check;
      script = "${script.drv}/bin/${st.pname}";
      args = [ "-c" "REPX_PACKAGE_NAMES_FILE=$packageNamesPath bash \"$checker/check-stage.sh\" \"$script\" && : > \"$out\"" ];
      PATH = binPath [ tools.jq tools.bash ];
      REPX_STAGE = st.pname;
      REPX_STAGE_FILE = st.relFile;
      REPX_PREAMBLE_LINES = toString script.preambleLines;
      REPX_BODY_LINE = toString st.body.line;
      REPX_BODY_INDENT = toString st.body.indent;
      REPX_BODY_LINES = toString script.bodyLines;
      REPX_DEP_PATH = binPath (baseTools ++ st.runDependencies);
      REPX_SHELLCHECK = "${tools.shellcheck}/bin/shellcheck";
      REPX_SHFMT = "${tools.shfmt}/bin/shfmt";
      REPX_SHELLCHECK_SEVERITY = severity;
      # The package hint names only packages that exist; a file, since real nixpkgs has
      # ~20k names (more than one environment variable may hold).
      packageNames = concatStringsSep "\n" (attrNames pkgs);
      passAsFile = [ "packageNames" ];
    };
in
{
  inherit load mkScript mkCheck baseTools fileArgs stageKind scatterLib;
}
