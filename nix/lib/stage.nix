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

  allowedKeys = [ "pname" "version" "description" "inputs" "outputs" "parameters" "runDependencies" "resources" "run" ];
  resourceKeys = hints.keys;
  scatterGatherKeys = [ "scatter" "steps" "gather" ];

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
      line = if pos == null then 0 else find (pos.line - 1);
      indent = if line == 0 || line > n then 0 else builtins.stringLength (builtins.head (match "([[:space:]]*).*" (builtins.elemAt lines (line - 1))));
    in
    { inherit line indent; };

  load =
    pkgs: node:
    let
      file = node.file;
      where0 = util.relPath file;
      raw = import file;
      spec = util.callWith { inherit pkgs; } raw;
      pname = spec.pname or (fail where0 "a stage needs 'pname'");
      where = "${where0} (stage ${pname})";
      unknown = filter (k: !(builtins.elem k allowedKeys)) (attrNames spec);
      sg = filter (k: builtins.elem k scatterGatherKeys) (attrNames spec);
      inputsRaw = spec.inputs or [ ];
      inputNames =
        if isList inputsRaw then inputsRaw
        else if isAttrs inputsRaw then attrNames inputsRaw
        else fail where "'inputs' must be a list of names or an attribute set";
      outputs = spec.outputs or { };
      parameters = spec.parameters or { };
      resourcesRaw = spec.resources or { };
      badResources = if isAttrs resourcesRaw then filter (k: !(builtins.elem k resourceKeys)) (attrNames resourcesRaw) else [ ];
      badInputs = filter (n: !(validName n)) inputNames;
      badOutputs = filter (n: !(validName n) || match "\\$out/.+" outputs.${n} == null || match "(.*/)?\\.\\.(/.*)?" outputs.${n} != null) (attrNames outputs);
      badParams = filter (n: !(validName n)) (attrNames parameters);
      runDependencies = spec.runDependencies or [ ];
      checked =
        if sg != [ ] then fail where "scatter-gather stages (${showList sg}) are not supported by this repx; split the work into stages with a 'gather' dependency"
        else if unknown != [ ] then fail where "unknown attribute(s) ${showList unknown}; allowed: ${showList allowedKeys}"
        else if !(spec ? run) then fail where "missing attribute 'run' (the stage script)"
        else if !(isAttrs outputs) then fail where "'outputs' must be an attribute set { \"name\" = \"$out/path\"; }"
        else if badOutputs != [ ] then fail where "output(s) ${showList badOutputs}: names must be plain words and values of the form \"$out/<relative path>\""
        else if badInputs != [ ] then fail where "input name(s) ${showList badInputs} must be plain words ([A-Za-z0-9_.+-])"
        else if !(isAttrs parameters) then fail where "'parameters' must be an attribute set of defaults"
        else if badParams != [ ] then fail where "parameter name(s) ${showList badParams} must be plain words"
        else if !(isAttrs resourcesRaw) then fail where "'resources' must be an attribute set"
        else if badResources != [ ] then fail where "unknown resource key(s) ${showList badResources}; allowed: ${showList resourceKeys}"
        else if !(isAttrs resources) then false # never: normalise fails on a bad hint
        else if !(validName pname) then fail where0 "pname '${pname}' must be a plain word ([A-Za-z0-9_.+-])"
        else if !(validName (toString (spec.version or "1.0"))) then fail where "version '${toString spec.version}' must be a plain word ([A-Za-z0-9_.+-])"
        else if !(isList runDependencies) then fail where "'runDependencies' must be a list of packages"
        else true;
      # The lab carries the normalised hints (mem in MiB, time in minutes).
      resources = hints.normalise fail where resourcesRaw;
    in
    assert checked;
    {
      inherit file pname inputNames outputs parameters resources runDependencies spec where;
      relFile = where0;
      version = toString (spec.version or "1.0");
      paramNames = attrNames parameters;
      body = bodyLine file spec;
    };

  # Render the job script. Inputs and parameters become bash references resolved at run
  # time from the JSON files the runner passes, so one script serves every job of the stage.
  mkScript =
    pkgs: st:
    let
      refs = prefix: names: listToAttrs (map (n: { name = n; value = "\${${prefix}[${n}]}"; }) names);
      body = util.callWith {
        inherit pkgs;
        inputs = refs "INPUTS" st.inputNames;
        parameters = refs "PARAMS" st.paramNames;
        outputs = st.outputs;
      } st.spec.run;
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
  inherit load mkScript mkCheck baseTools;
}
