# readme/README.md of a lab: what a person opening the lab directory wants to know.
# The counts are functions: the blueprint path (lab.nix) leaves them to expand-lab.py.
{
  name,
  gitHash,
  labVersion,
  version,
  runList,
  runDeps,
  groups,
  jobCount,
  runJobCount ? r: toString (builtins.length (builtins.attrNames r.jobs)),
  stageJobCount ? r: s: toString (builtins.length (builtins.filter (j: j.pname == s) (builtins.attrValues r.jobs))),
}:
let
  inherit (builtins) attrNames concatStringsSep length toJSON;
  showDeps = deps: if deps == { } then "none" else concatStringsSep ", " (map (d: "${d} (${deps.${d}})") (attrNames deps));
  runSection = r: ''
    ## Run `${r.name}`

    - jobs: ${runJobCount r}
    - depends on: ${showDeps runDeps.${r.name}}
    - parameters: ${if r.parameters == { } then "none" else concatStringsSep "; " (map (p: "`${p}` = ${toJSON r.parameters.${p}}") (attrNames r.parameters))}

    | stage | jobs | file |
    |---|---|---|
    ${concatStringsSep "\n" (map (s: "| ${s} | ${stageJobCount r s} | ${r.stages.${s}.info.file} |") r.stageOrder)}
  '';
in
''
  # Lab `${name}`

  | | |
  |---|---|
  | lab version | ${labVersion} |
  | git commit | ${gitHash} |
  | built by | repx nix library ${version} |
  | runs | ${toString (length runList)} |
  | jobs | ${toString jobCount} |
  | groups | ${if groups == { } then "none" else concatStringsSep ", " (map (g: "@${g}: ${concatStringsSep " " groups.${g}}") (attrNames groups))} |

  Run it with `repx run --lab <this directory>`; inspect it with `repx list runs` and
  `repx list jobs`. Format: `repx-lab/1` (see lab/lab-metadata.json).

  ${concatStringsSep "\n" (map runSection runList)}
''
