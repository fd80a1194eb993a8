# The lab: ONE derivation for the whole experiment. Job ids and every JSON document are
# computed during evaluation; the builder only does batched file work (a few processes in
# all, never one per job), so 10,000 jobs build in seconds.
{
  util,
  tools,
  pkgs,
  version,
  name,
  gitHash,
  labVersion,
  groups,
  order,
  expanded,
  runDeps,
  containerMode,
}:
let
  inherit (builtins) attrNames attrValues concatLists concatStringsSep genList length listToAttrs toJSON;

  static = pkgs.pkgsStatic or pkgs;
  # Tools a host without Nix needs to run the lab (bubblewrap binds store/ at /nix/store).
  hostToolPkgs = [ static.bash static.busybox static.coreutils static.jq static.rsync static.bubblewrap ];
  hostToolsHash = util.hash32 (concatStringsSep "\n" (map toString hostToolPkgs));

  runList = map (n: expanded.${n}) order;
  # A job shared by several runs (identical content) is written once.
  allJobs = listToAttrs (concatLists (map (r: map (j: { name = j.id; value = j; }) (attrValues r.jobs)) runList));
  jobCount = length (attrNames allJobs);

  # One line per executable of a job (a scatter-gather job has several).
  jobsTable = concatStringsSep "" (concatLists (map (j: map (e: "${j.id}\t${e.name}\t${e.script}\t${toJSON j.params}\t${concatStringsSep " " j.outDirs}\n") j.executables) (attrValues allJobs)));

  manifests = map (r: { path = "revision/${r.hash}.json"; text = toJSON r.manifest; }) runList;
  manifestVars = genList (i: "manifest${toString i}") (length manifests);

  revision = {
    format = "repx-revision/1";
    runs = listToAttrs (map (r: {
      name = r.name;
      value = {
        manifest = "revision/${r.hash}.json";
        inherit (r) hash;
        depends_on = runDeps.${r.name};
        job_count = length (attrNames r.jobs);
        stages = r.stageOrder;
      };
    }) runList);
    run_order = order;
    inherit groups;
  };

  labMeta = {
    format = "repx-lab/1";
    lab_version = labVersion;
    repx_version = version;
    git_hash = gitHash;
    metadata = "revision/metadata.json";
    host_tools = "host-tools/${hostToolsHash}";
    store = "store";
    readme = "readme/README.md";
    container_mode = containerMode;
    images = if containerMode == "unified" then { unified = "images/${imageHash}"; } else { };
    job_count = jobCount;
  };

  readme = import ./readme.nix { inherit name gitHash labVersion version runList runDeps groups jobCount; };

  scripts = concatLists (map (r: r.scriptDrvs) runList);
  # Store paths that parameter values refer to (e.g. `data = [ ./input.csv ]`): part of the
  # closure a host without Nix needs, like the scripts.
  tableContext = builtins.getContext jobsTable;
  paramPaths = map (p: builtins.appendContext p { ${p} = { path = true; }; }) (
    builtins.filter (p: tableContext.${p}.path or false) (attrNames tableContext)
  );
  closureRoots = scripts ++ paramPaths;
  # "unified": one image root filesystem for every job, so that a bubblewrap run sees only
  # the lab's closure instead of the host's /usr, /bin, /etc.
  imageHash = util.hash32 (concatStringsSep "\n" ([ "repx-image/1" ] ++ map toString closureRoots));
  checks = concatLists (map (r: r.checks) runList);
in
derivation (
  {
    name = "repx-lab-${name}";
    system = tools.system;
    builder = "${tools.bash}/bin/bash";
    args = [ ./build-lab.sh ];
    PATH = concatStringsSep ":" (map (p: "${p}/bin") [ tools.coreutils tools.findutils tools.gnused tools.gnugrep tools.gawk tools.jq tools.bash ]);
    shell = "${tools.bash}/bin/bash";
    inherit jobsTable readme hostToolsHash;
    imageDir = if containerMode == "unified" then "images/${imageHash}" else "";
    imageShell = "${tools.bash}/bin/bash";
    imageEnv = "${tools.coreutils}/bin/env";
    revisionJson = toJSON revision;
    labMetaJson = toJSON labMeta;
    manifestPaths = concatStringsSep " " (map (m: m.path) manifests);
    inherit manifestVars;
    hostTools = map toString hostToolPkgs;
    # Building the lab requires every stage check to pass.
    checks = map toString checks;
    exportReferencesGraph = concatLists (genList (i: [ "closure${toString i}" (builtins.elemAt closureRoots i) ]) (length closureRoots));
    passAsFile = [ "jobsTable" "readme" "revisionJson" "labMetaJson" ] ++ manifestVars;
  }
  // listToAttrs (genList (i: { name = builtins.elemAt manifestVars i; value = (builtins.elemAt manifests i).text; }) (length manifests))
)
// {
  # For tests and tools: the lab's structure without building it.
  repx = {
    inherit jobCount order;
    jobs = builtins.mapAttrs (_: j: { inherit (j) pname params; inputs = map (i: i.job) j.inputs; }) allJobs;
    runs = listToAttrs (map (r: { name = r.name; value = attrNames r.jobs; }) runList);
  };
}
