{
  description = "repx unit tests: tiny derivations built by a static busybox (copied into bb/)";

  outputs =
    { self }:
    let
      system = "x86_64-linux";
      busybox = "${./bb}/busybox";
      mk =
        name: script:
        builtins.derivation {
          inherit name system;
          builder = busybox;
          args = [ "sh" "-c" script ];
        };
    in
    {
      packages.${system} = {
        default = mk "tiny-ok" "echo building ok; mkdir $out; echo hi > $out/greeting";
        fails = mk "tiny-fails" ''
          echo 'checking stage x'
          echo "repx: stage 'x' (stages/x.nix:1:2): ShellCheck SC2086 (info): quote this" >&2
          exit 3
        '';
        failsPlain = mk "tiny-fails-plain" ''
          for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "log line $i"; done
          exit 1
        '';
        evalError = throw "repx: stages/a.nix (stage a): unknown attribute 'foo'";
      };
      value = {
        a = 1;
        b = [ true null "x" ];
      };
      templates.default = {
        path = ./template;
        description = "tiny template";
      };
    };
}
