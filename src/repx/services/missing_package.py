"""Explain nix's ``attribute 'X' missing`` in one line: where, which package set, closest names.

Asked only after a build failed on it (a successful build never pays for this): one
``nix flake metadata`` for the flake's source and locked ``nixpkgs``, one ``nix eval`` of the
attribute names of the set the name was looked up in.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import nix
from repx.errors import NixError
from repx.nix_log import MissingAttribute

SYSTEM: Final = "x86_64-linux"
#: ``a.b.c`` at the error's column: the attribute path whose last looked-up part is missing.
_SELECT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*(?:\.[A-Za-z_][A-Za-z0-9_'-]*)*")
#: ``inherit (pkgs) a b;`` and ``with pkgs;`` (or ``pkgs.python3Packages``) before the name.
_PKGS: Final = r"(pkgs(?:\.[A-Za-z_][A-Za-z0-9_'-]*)*)"
_INHERIT: Final = re.compile(r"\s*inherit\s*\(\s*" + _PKGS + r"\s*\)")
_WITH: Final = re.compile(r"\bwith\s+" + _PKGS + r"\s*;")
_STORE_SOURCE: Final = re.compile(r"^/nix/store/[0-9a-z]{32}-[^/]+/")
_MAX_SUGGESTIONS: Final = 5


@dataclass(frozen=True)
class PackageSet:
    """Which set the name was looked up in: a path below ``legacyPackages.<system>``."""

    path: tuple[str, ...]  # () = top level; ("python3", "pkgs") = ps of python3.withPackages

    def describe(self, base: str = "package set") -> str:
        """``package set`` or ``python3Packages set of the package set``."""
        if not self.path:
            return base
        inner = "Packages" if self.path[-1] == "pkgs" and len(self.path) == 2 else ""
        name = f"{self.path[0]}{inner}" if inner else ".".join(self.path)
        return f"{name} set of the {base}"


def explain(
    missing: MissingAttribute,
    *,
    flake_ref: str,
    override_inputs: Mapping[str, str],
    show_trace: bool,
) -> str | None:
    """Return the one-line explanation of ``missing``; None when it is no package look-up.

    Only a look-up in the package set from a file of the built flake is explained: a missing
    attribute elsewhere (the user's own sets, the Nix library, nixpkgs) is better shown by
    nix's own report. Never raises NixError: what cannot be found out is left out.
    """
    source = _source_line(missing)
    pkgset = guess_package_set(source, missing)
    if pkgset is None:
        return None
    try:
        meta = nix.flake_metadata(flake_ref, override_inputs=override_inputs)
    except NixError:
        meta = None
    where = _where(missing, meta)
    if where is None:
        return None
    offline, names = False, None
    locks = _locks(meta)
    found = _names(locks, pkgset) if locks is not None else None
    if found is not None:
        offline, names = found
    if offline:
        what = "offline package set (the repx offline toolchain, see docs/offline.md)"
        text = f"{where}: '{missing.name}' is not in the {pkgset.describe(what)}"
    else:
        text = f"{where}: the {pkgset.describe()} has no attribute '{missing.name}'"
    if names is not None:
        close = closest(missing.name, names)
        text += f"; closest names: {', '.join(close)}" if close else "; no similar name"
    elif missing.nix_suggests:
        text += f"; nix suggests {missing.nix_suggests}"
    if not show_trace:
        text += " (repx build --show-trace shows nix's trace)"
    return text


def closest(name: str, names: list[str]) -> list[str]:
    """The available names nearest to ``name`` (case-insensitive difflib ratio), best first."""
    lowered = {n.lower(): n for n in names}
    matches = difflib.get_close_matches(name.lower(), list(lowered), _MAX_SUGGESTIONS, 0.6)
    return [lowered[m] for m in matches]


def guess_package_set(source: str, missing: MissingAttribute) -> PackageSet | None:
    """Tell from the quoted source which set ``missing.name`` was looked up in.

    ``pkgs.X`` → top level; ``pkgs.python3Packages.X`` → that set; ``ps.X`` where the line
    (or the file) has ``python3.withPackages (ps: …`` → ``python3.pkgs``. None when unknown.
    """
    start = max(missing.column - 1, 0)
    if missing.variable:
        # `with pkgs; [ pythn ]`: an unknown name after `with pkgs;` was a package name
        with_pkgs = _WITH.search(source, 0, start)
        return PackageSet(tuple(with_pkgs.group(1).split(".")[1:])) if with_pkgs else None
    if inherit := _INHERIT.match(source, start):
        return PackageSet(tuple(inherit.group(1).split(".")[1:]))
    match = _SELECT.match(source, start)
    if match is None:
        return None
    parts = match.group(0).split(".")
    if missing.name not in parts[1:]:
        return None
    before = parts[: parts.index(missing.name, 1)]
    if before[0] == "pkgs":
        return PackageSet(tuple(before[1:]))
    if len(before) == 1:
        text = _file_text(missing) or source
        lam = re.search(
            r"([A-Za-z_][A-Za-z0-9_']*)\.withPackages\s*\(\s*" + re.escape(before[0]) + r"\s*:",
            text,
        )
        if lam is not None:
            return PackageSet((lam.group(1), "pkgs"))
    return None


def _where(missing: MissingAttribute, meta: nix.JsonValue) -> str | None:
    """``nix/stage.nix:8:5`` for a file of the built flake; None for a file elsewhere."""
    file = missing.file
    root = meta.get("path") if isinstance(meta, dict) else None
    if isinstance(root, str):
        if not file.startswith(root.rstrip("/") + "/"):
            return None
        file = file[len(root.rstrip("/")) + 1 :]
    elif _STORE_SOURCE.match(file):  # no metadata: the file of some flake's source
        file = _STORE_SOURCE.sub("", file)
    return f"{file}:{missing.line}:{missing.column}"


def _file_text(missing: MissingAttribute) -> str:
    try:
        return Path(missing.file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _source_line(missing: MissingAttribute) -> str:
    lines = _file_text(missing).splitlines()
    if 0 < missing.line <= len(lines):
        return lines[missing.line - 1]
    return missing.source


def _locks(meta: nix.JsonValue) -> nix.JsonValue | None:
    """The flake's lock graph (after overrides) when it has a ``nixpkgs`` input."""
    if not isinstance(meta, dict):
        return None
    locks = meta.get("locks")
    if not isinstance(locks, dict) or not isinstance(nodes := locks.get("nodes"), dict):
        return None
    root = nodes.get(str(locks.get("root", "root")))
    inputs = root.get("inputs") if isinstance(root, dict) else None
    return locks if isinstance(inputs, dict) and "nixpkgs" in inputs else None


#: Loads the ``nixpkgs`` input from the lock graph the way nix calls flakes: each locked
#: source fetched, its inputs (``follows`` lists included) loaded first, ``outputs`` called.
#: ``builtins.getFlake`` would not do: it refuses an input without a lock file of its own.
_LOAD_NIXPKGS: Final = """
  nodes = lock.nodes;
  nodeOf = path: builtins.foldl' (cur: n: resolve nodes.${cur}.inputs.${n}) lock.root path;
  resolve = ref: if builtins.isList ref then nodeOf ref else ref;
  load = name:
    let
      node = nodes.${name};
      src = builtins.fetchTree node.locked;
      inputs = builtins.mapAttrs (_: ref: load (resolve ref)) (node.inputs or { });
      outputs = (import (src.outPath + "/flake.nix")).outputs (inputs // { self = result; });
      result = outputs // src // { inherit inputs outputs; sourceInfo = src; };
    in
    if (node.flake or true) then result else src;
  nixpkgs = load (resolve nodes.${lock.root}.inputs.nixpkgs);
"""


def _nix_string(text: str) -> str:
    """A Nix string literal of ``text`` (no interpolation)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def _names(locks: nix.JsonValue, pkgset: PackageSet) -> tuple[bool, list[str]] | None:
    """(is the repx offline toolchain, attribute names of the set), or None if not evaluable."""
    path = " ".join(_nix_string(p) for p in pkgset.path)
    expr = (
        f"let lock = builtins.fromJSON {_nix_string(json.dumps(locks))}; {_LOAD_NIXPKGS}"
        f"top = nixpkgs.legacyPackages.{SYSTEM}; "
        f"set = builtins.foldl' (s: n: s.${{n}} or {{ }}) top [ {path} ]; "
        "in { offline = top.repxOffline or false; "
        "names = if builtins.isAttrs set then builtins.attrNames set else [ ]; }"
    )
    try:
        value = nix.eval_json(expr=expr, impure=True)
    except NixError:
        return None
    if not isinstance(value, dict) or not isinstance(names := value.get("names"), list):
        return None
    return value.get("offline") is True, [str(n) for n in names]
