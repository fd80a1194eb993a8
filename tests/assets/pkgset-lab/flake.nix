{
  # An experiment written for real nixpkgs: Python with numpy/pandas/matplotlib, gnuplot,
  # gawk math, a C and a C++ program built with stdenv.mkDerivation, the trivial builders.
  # Tests build it against the offline toolchain and against tests/assets/nixpkgs-standin.
  inputs.nixpkgs.url = "nixpkgs";
  outputs = { self, nixpkgs }:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      inherit (pkgs) lib;
      python = pkgs.python3.withPackages (ps: [ ps.numpy ps.scipy ps.pandas ps.matplotlib ]);
      sim = pkgs.stdenv.mkDerivation {
        pname = "sim"; version = "1.0";
        src = ./sim-make;
        makeFlags = [ "PREFIX=$(out)" ];
      };
      simxx = pkgs.stdenv.mkDerivation (finalAttrs: {
        pname = "simxx"; version = "0.1";
        src = ./sim-cmake;
        nativeBuildInputs = [ pkgs.cmake ];
        meta.mainProgram = finalAttrs.pname;
      });
      custom = pkgs.stdenv.mkDerivation {
        name = "custom-install";
        src = ./sim-make;
        buildPhase = "$CC -O2 -o sim sim.c -lm";
        installPhase = ''
          mkdir -p $out/bin
          cp sim $out/bin/sim-custom
        '';
      };
      # a shared library, and a program that finds its header and library through buildInputs
      libsq = pkgs.stdenv.mkDerivation {
        pname = "libsq"; version = "1";
        src = ./libsq;
        makeFlags = [ "PREFIX=$(out)" ];
      };
      usesq = pkgs.stdenv.mkDerivation {
        pname = "usesq"; version = "1";
        src = ./usesq;
        buildInputs = [ libsq ];
        buildPhase = "$CC -o usesq main.c -lsq";
        installPhase = "mkdir -p $out/bin && cp usesq $out/bin/";
      };
      # src as a tarball (unpacked with GNU tar)
      simtar = pkgs.stdenv.mkDerivation {
        pname = "simtar"; version = "1";
        src = pkgs.runCommand "sim-1.tar.gz" { } "tar -cf - -C ${./.} sim-make | gzip -n > $out";
        makeFlags = [ "PREFIX=$(out)" ];
        postInstall = "mv $out/bin/sim $out/bin/simtar";
      };
      plot = pkgs.writeText "plot.py" ''
        import sys
        import numpy as np, pandas as pd, scipy.stats
        import matplotlib
        import matplotlib.pyplot as plt
        df = pd.DataFrame({"x": np.arange(10), "y": np.arange(10) ** 2})
        print("backend", matplotlib.get_backend())
        print("mean", df.y.mean(), "norm", round(float(scipy.stats.norm.cdf(0)), 2))
        print("tz", pd.Timestamp("2020-06-01 12:00", tz="Europe/Paris").tz_convert("UTC").hour)
        df.plot(x="x", y="y")
        plt.savefig(sys.argv[1])
      '';
      hello-app = pkgs.writeShellApplication {
        name = "greet";
        runtimeInputs = [ pkgs.hello pkgs.jq ];
        text = ''hello -g "$(jq -nr '"from jq"')"'';
      };
      check = name: deps: script: pkgs.runCommand name { nativeBuildInputs = deps; } ''
        set -euo pipefail
        ${script}
      '';
    in
    {
      packages.x86_64-linux = {
        inherit sim simxx custom python hello-app usesq simtar;
        python-plot = check "python-plot" [ python ] ''
          mkdir -p $out
          python3 ${plot} $out/plot.png > $out/log
          [ -e /bin/sh ] || echo no-bin >> $out/log
        '';
        gnuplot-png = check "gnuplot-png" [ pkgs.gnuplot ] ''
          mkdir -p $out
          gnuplot -e "set terminal png size 320,240; set output '$out/plot.png'; plot sin(x)" 2> $out/log
          gnuplot -e "set terminal pngcairo; set output '$out/cairo.png'; plot cos(x) title 'cos'" 2>> $out/log
          gnuplot -e "set terminal postscript; set output '$out/plot.ps'; plot x" 2>> $out/log
        '';
        gawk-math = check "gawk-math" [ pkgs.gawk pkgs.bc ] ''
          gawk 'BEGIN { printf "%.6f %.6f %.4f %.4f\n", sqrt(2), 2^0.5, log(10), sin(1) }' > $out
          echo 'scale=4; sqrt(2)' | bc >> $out
        '';
        programs = check "programs" [ sim simxx custom hello-app usesq simtar ] ''
          { sim 1000 7; simxx; sim-custom 10 1; greet; usesq; simtar 10 1; } > $out
        '';
        builders = let
          joined = pkgs.symlinkJoin { name = "joined"; paths = [ pkgs.hello sim ]; };
          script = pkgs.writeShellScript "s.sh" "echo shell-script";
          bin = pkgs.writeShellScriptBin "sbin" "echo script-bin";
          tf = pkgs.writeTextFile { name = "tf"; text = "in a dir\n"; destination = "/share/tf.txt"; };
          sc = pkgs.writeScript "raw" "#!${pkgs.runtimeShell}\necho raw-script\n";
        in check "builders" [ ] ''
          { ${joined}/bin/hello; ${joined}/bin/sim 10 1; ${script}; ${bin}/bin/sbin; ${sc}; cat ${tf}/share/tf.txt; ${lib.getExe bin}; } > $out
        '';
        # GNU cat under pipefail: `cat f | head -1` must never die of SIGPIPE (busybox cat did, ~2 %).
        pipefail = check "pipefail" [ pkgs.coreutils ] ''
          seq 1 2000 > f
          n=0
          for i in $(seq 1 10000); do cat f | head -1 > /dev/null; n=$((n + 1)); done
          echo "$n" > $out
        '';
      };
    };
}
