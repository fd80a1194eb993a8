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
          description = "Python (numpy) Ising-model simulation swept over seeds and temperatures; a dependent run aggregates it with pandas and plots it with matplotlib (PNG)";
        };
        minimal = {
          path = ./templates/minimal;
          description = "One run, one stage: the smallest repx experiment";
        };
      };
    };
}
