"""The lab: the read-only directory a ``nix build`` of an experiment produces."""
