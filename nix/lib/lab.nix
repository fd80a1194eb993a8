# The lab: ONE derivation for the whole experiment. Two paths give the same lab:
#  - the blueprint path (when every stage is constant: no dynamic attribute, no
#    scatter-gather): evaluation renders the runs' blueprints (nix/lib/expand.nix), whose
#    size is that of the definition, and the builder's expand-lab.py expands the jobs,
#    computes their ids and writes the jobs table, manifests, revision metadata and README;
#  - the evaluation path (the others): job ids and every JSON document are computed during
#    evaluation.
# Either way the builder only does batched file work (a few processes in all, never one
# per job), so 10,000 jobs build in seconds.
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
  # The runs expanded without forcing their jobs (the blueprint path), or null.
  blueExpanded ? null,
  # Every run of the mkLab, in order (expand-lab.py follows those before a run to give its
  # jobs the ids they have in the whole lab).
  fullOrder ? order,
}:
let
  inherit (builtins) attrNames attrValues concatLists concatStringsSep genList length listToAttrs toJSON;

  # The readme's counts are left to expand-lab.py as \x01<ref>\x01 (a character no name holds:
  # checked below, else the evaluation path is taken).
  mark = builtins.fromJSON ''"\u0001"'';
  indexOf = x: l: let go = i: if builtins.elemAt l i == x then i else go (i + 1); in go 0;
  blueRuns = map (n: blueExpanded.${n}) order;
  blueReadme = import ./readme.nix {
    inherit name gitHash labVersion version runDeps groups;
    runList = blueRuns;
    jobCount = "${mark}lab${mark}";
    runJobCount = r: "${mark}run:${toString (indexOf r.name fullOrder)}${mark}";
    stageJobCount = r: s: "${mark}stage:${toString (indexOf r.name fullOrder)}:${toString (indexOf s r.stageOrder)}${mark}";
  };
  # The runs up to the last of this lab's (a run's ids depend on the runs before it only).
  lastIndex = builtins.foldl' (m: n: let i = indexOf n fullOrder; in if i > m then i else m) 0 order;
  blueOrder = genList (i: builtins.elemAt fullOrder i) (lastIndex + 1);
  marks = 1 + builtins.foldl' (n: r: n + 1 + length r.stageOrder) 0 blueRuns;
  useBlueprint =
    blueExpanded != null && pkgs ? python3
    && builtins.all (n: blueExpanded.${n}.eligible) blueOrder
    && length (builtins.split mark blueReadme) == 4 * marks + 1; # two characters a mark

  static = pkgs.pkgsStatic or pkgs;
  # Tools a host without Nix needs to run the lab (bubblewrap binds store/ at /nix/store).
  hostToolPkgs = [ static.bash static.busybox static.coreutils static.jq static.rsync static.bubblewrap ];
  hostToolsHash = util.hash32 (concatStringsSep "\n" (map toString hostToolPkgs));
  # Its own derivation: built once for these packages and shared by every lab revision
  # (the lab's host-tools/<hash> is a link to it).
  hostToolsDrv = derivation {
    name = "repx-host-tools";
    system = tools.system;
    builder = "${tools.bash}/bin/bash";
    args = [ ./build-host-tools.sh ];
    PATH = concatStringsSep ":" (map (p: "${p}/bin") [ tools.coreutils tools.findutils tools.bash ]);
    hostTools = map toString hostToolPkgs;
  };

  # The runs with their jobs (the evaluation path; also `repx` below, for tests and tools),
  # and the runs as the definition gives them (no job forced on the blueprint path).
  evalRuns = map (n: expanded.${n}) order;
  runList = if useBlueprint then blueRuns else evalRuns;
  # A job shared by several runs (identical content) is written once.
  allJobs = listToAttrs (concatLists (map (r: map (j: { name = j.id; value = j; }) (attrValues r.jobs)) evalRuns));
  jobCount = length (attrNames allJobs);

  # One line per executable of a job (a scatter-gather job has several); the job's columns
  # are rendered once per job, not once per line.
  jobsTable = concatStringsSep "" (map (j:
    let rest = "\t${j.paramsJSON}\t${concatStringsSep " " j.outDirs}\n"; in
    concatStringsSep "" (map (e: "${j.id}\t${e.name}\t${e.script}${rest}") j.executables)
  ) (attrValues allJobs));

  # A run manifest is the JSON of r.manifest with one job per line (the jobs last), so that
  # the builder can index where each job's record lies (lab/job-index.tsv) and a reader
  # can parse one job without the rest: `{…,"jobs":{` / `"<id>":{…},` … / `}}`.
  manifestText = r:
    let
      top = toJSON (removeAttrs r.manifest [ "jobs" ]);
      lines = map (id: "${toJSON id}:${toJSON r.manifest.jobs.${id}}") (attrNames r.manifest.jobs);
    in
    "${builtins.substring 0 (builtins.stringLength top - 1) top},\"jobs\":{\n${concatStringsSep ",\n" lines}\n}}\n";
  manifests = map (r: {
    path = "revision/${r.hash}.json";
    text = manifestText r;
    # "<id>\t<the jobs it reads, space-separated>" in the order of the manifest's lines
    # (the builder adds their byte ranges)
    ids = concatStringsSep "" (map (id:
      "${id}\t${concatStringsSep " " (util.unique (map (i: i.job) r.jobs.${id}.inputs))}\n"
    ) (attrNames r.manifest.jobs));
  }) evalRuns;
  manifestVars = genList (i: "manifest${toString i}") (length order);

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
    }) evalRuns);
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
    images = builtins.mapAttrs (_: i: i.dir) images;
    job_count = jobCount;
  };

  readme = import ./readme.nix { inherit name gitHash labVersion version runDeps groups jobCount; runList = evalRuns; };

  # What expand-lab.py reads: every run's blueprint (in the mkLab's order), the runs of
  # this lab, and the documents it completes (lab metadata without job_count, README).
  blueprint = {
    runs = map (n: blueExpanded.${n}.blueprint // { dependsOn = runDeps.${n}; }) blueOrder;
    selected = order;
    inherit groups;
    labMeta = removeAttrs labMeta [ "job_count" ];
    readme = blueReadme;
  };

  scripts = concatLists (map (r: r.scriptDrvs) runList);
  # Store paths that parameter values refer to (e.g. `data = [ ./input.csv ]`): part of the
  # closure a host without Nix needs, like the scripts.
  tableContext = builtins.getContext (if useBlueprint then concatStringsSep "" (map (r: r.valuesText) blueRuns) else jobsTable);
  paramPaths = map (p: builtins.appendContext p { ${p} = { path = true; }; }) (
    builtins.filter (p: tableContext.${p}.path or false) (attrNames tableContext)
  );
  # The images' OCI layout (podman, docker): one store path shared by every lab and revision
  # built with the same packages, part of the closure so that store/ (and an export) has it.
  ociImage = import ./oci-image.nix { inherit tools; gnutar = pkgs.gnutar; };
  ociRoots = if containerMode == "none" then [ ] else [ ociImage ];
  closureRoots = scripts ++ paramPaths ++ ociRoots;
  # The same, per run (the store paths of a "per-run" image).
  runRoots = r:
    let ctx = builtins.getContext (if useBlueprint then blueExpanded.${r.name}.valuesText else concatStringsSep "" (map (j: toJSON j.params) (attrValues r.jobs)));
    in r.scriptDrvs ++ ociRoots ++ map (p: builtins.appendContext p { ${p} = { path = true; }; }) (
      builtins.filter (p: ctx.${p}.path or false) (attrNames ctx)
    );
  runKeys = listToAttrs (genList (i: { name = (builtins.elemAt runList i).name; value = "run${toString i}"; }) (length runList));
  # What the lab refers to instead of copying: NAR hash, size and inner links of each path
  # (closure-info.sh). Depends on the closure roots only, so a parameter change reuses it.
  closureInfo = derivation ({
    name = "repx-closure.json";
    system = tools.system;
    builder = "${tools.bash}/bin/bash";
    args = [ ./closure-info.sh ];
    __structuredAttrs = true;
    PATH = concatStringsSep ":" (map (p: "${p}/bin") [ tools.coreutils tools.findutils tools.jq ]);
    hostToolsPath = "${hostToolsDrv}";
    inherit hostToolsHash runKeys;
    exportReferencesGraph = {
      closure = closureRoots;
      hosttools = [ hostToolsDrv ];
    } // listToAttrs (genList (i: { name = "run${toString i}"; value = runRoots (builtins.elemAt runList i); }) (length runList));
  });
  # Images: a root filesystem skeleton, so that a bubblewrap run sees only the lab's closure
  # instead of the host's /usr, /bin, /etc. "unified": one for every job; "per-run": one per
  # run (keyed by run name), listing that run's closure. Keyed by the roots, so runs with the
  # same closure share one.
  imageOf = run: roots: { inherit run; dir = "images/${util.hash32 (concatStringsSep "\n" ([ "repx-image/1" ] ++ map toString roots))}"; };
  images =
    if containerMode == "unified" then { unified = imageOf "" closureRoots; }
    else if containerMode == "per-run" then listToAttrs (map (r: { name = r.name; value = imageOf r.name (runRoots r); }) runList)
    else { };
  checks = concatLists (map (r: r.checks) runList);
  common = {
    name = "repx-lab-${name}";
    system = tools.system;
    builder = "${tools.bash}/bin/bash";
    args = [ ./build-lab.sh ];
    PATH = concatStringsSep ":" (map (p: "${p}/bin") ([ tools.coreutils tools.findutils tools.gnused tools.gnugrep tools.gawk tools.jq tools.bash ] ++ (if useBlueprint then [ pkgs.python3 ] else [ ])));
    shell = "${tools.bash}/bin/bash";
    inherit hostToolsHash;
    hostToolsPath = "${hostToolsDrv}";
    closureInfo = "${closureInfo}";
    # "<dir>\t<run>" per image (no run: the lab's closure)
    imageSpecs = concatStringsSep "\n" (map (i: "${i.dir}\t${i.run}") (attrValues images));
    imageShell = "${tools.bash}/bin/bash";
    imageEnv = "${tools.coreutils}/bin/env";
    imageRootfs = ./image-rootfs.sh;
    imageOci = if ociRoots == [ ] then "" else "${ociImage}";
    # Building the lab requires every stage check to pass.
    checks = map toString checks;
  };
in
# The attribute names do not depend on the path taken (only the values do), so that using
# the lab value (`.runs.<name>`, `.repx`) decides nothing.
derivation (
  common
  // (
    let
      on = v: if useBlueprint then v else "";
      off = v: if useBlueprint then "" else v;
    in
    {
      blueprint = on (toJSON blueprint);
      expandLab = on "${./expand-lab.py}";
      jobsTable = off jobsTable;
      readme = off readme;
      revisionJson = off (toJSON revision);
      labMetaJson = off (toJSON labMeta);
      manifestPaths = off (concatStringsSep " " (map (m: m.path) manifests));
      manifestVars = off manifestVars;
      manifestIds = off (concatStringsSep "" (map (m: m.ids) manifests));
      passAsFile = if useBlueprint then [ "blueprint" ] else [ "jobsTable" "readme" "revisionJson" "labMetaJson" "manifestIds" ] ++ manifestVars;
    }
    // listToAttrs (genList (i: { name = builtins.elemAt manifestVars i; value = off (builtins.elemAt manifests i).text; }) (length order))
  )
)
// {
  # For tests and tools: the lab's structure without building it (from the evaluation path).
  repx = {
    # "blueprint" or "evaluation": the path this lab was built by
    expansion = if useBlueprint then "blueprint" else "evaluation";
    inherit jobCount order hostToolsDrv closureInfo;
    jobs = builtins.mapAttrs (_: j: { inherit (j) pname params; inputs = map (i: i.job) j.inputs; }) allJobs;
    runs = listToAttrs (map (r: { name = r.name; value = attrNames r.jobs; }) evalRuns);
  };
}
