{
  description = "repx: build and run reproducible computational experiments with Nix";

  # No inputs: the library takes the package set (nixpkgs or the repx offline toolchain)
  # from the experiment, so this flake evaluates offline.
  outputs =
    { self }:
    {
      lib = import ./nix/lib;

      templates = {
        default = {
          path = ./templates/default;
          description = "Monte Carlo estimate of pi swept over seeds and sample sizes, aggregated, with a report run";
        };
        minimal = {
          path = ./templates/minimal;
          description = "One run, one stage: the smallest repx experiment";
        };
      };
    };
}
