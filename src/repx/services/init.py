"""``repx init``: create an experiment flake from a template of the repx flake."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import git, nix, resources
from repx.errors import TemplateError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE: Final = "default"
#: The experiment name written in the templates, replaced by ``--name``.
NAME_PLACEHOLDER: Final = "my-experiment"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DESCRIPTION: Final = re.compile(r'\bdescription\s*=\s*"((?:[^"\\]|\\.)*)"\s*;')
#: A template declaration in the top-level flake.nix: ``name = { path = ./templates/x; … };``
_DECLARATION: Final = re.compile(r"([\w.-]+)\s*=\s*\{([^{}]*\bpath\s*=\s*\./templates/[^{}]*)\}")
#: Conflicting files named in the error message.
_MAX_SHOWN: Final = 5


@dataclass(frozen=True)
class TemplateInfo:
    """A template of the repx flake."""

    name: str
    description: str
    path: Path


@dataclass(frozen=True)
class InitResult:
    """What ``init_experiment`` did."""

    dest: Path
    template: str
    files: tuple[Path, ...]
    git_initialized: bool
    git_staged: bool


def list_templates(flake_dir: Path | None = None) -> list[TemplateInfo]:
    """List the templates (sub-directories with a flake.nix), with their descriptions.

    The description comes from the template's declaration in the repx flake.nix, else
    from the template's own flake.nix (read as text: no evaluation needed).
    """
    source_dir = flake_dir if flake_dir is not None else resources.flake_dir()
    directory = resources.templates_dir(source_dir)
    if not directory.is_dir():
        return []
    declared = _declared_descriptions(source_dir / "flake.nix")
    templates = []
    for path in sorted(directory.iterdir()):
        flake = path / "flake.nix"
        if path.is_dir() and flake.is_file():
            description = declared.get(path.name) or _description(flake.read_text(errors="replace"))
            templates.append(TemplateInfo(path.name, description, path))
    return templates


def _declared_descriptions(flake_nix: Path) -> dict[str, str]:
    """Map template directory names to the descriptions declared in the repx flake.nix."""
    try:
        text = flake_nix.read_text(errors="replace")
    except OSError:
        return {}
    found = {}
    for match in _DECLARATION.finditer(text):
        body = match.group(2)
        directory = re.search(r"\bpath\s*=\s*\./templates/([\w.-]+)", body)
        if directory is not None:
            found[directory.group(1)] = _description(body)
    return found


def _description(text: str) -> str:
    match = _DESCRIPTION.search(text)
    return match.group(1).replace('\\"', '"') if match else ""


def init_experiment(
    dest: Path,
    template: str = DEFAULT_TEMPLATE,
    name: str | None = None,
    *,
    flake_dir: Path | None = None,
) -> InitResult:
    """Copy ``template`` into ``dest`` and make it a git-tracked experiment flake.

    Nothing is written when a template file already exists in ``dest``. ``name``
    replaces the placeholder experiment name. Outside a git repository a new one is
    created; the new files are staged (a flake only sees tracked or staged files).
    """
    if name is not None and not _NAME.match(name):
        raise UsageError(f"invalid experiment name '{name}' (use letters, digits, '.', '_', '-')")
    source_dir = flake_dir if flake_dir is not None else resources.flake_dir()
    info = _find_template(template, source_dir)
    rel_files = _template_files(info.path)
    dest = dest.absolute()
    conflicts = [rel for rel in rel_files if os.path.lexists(dest / rel)]
    if conflicts:
        shown = ", ".join(str(p) for p in conflicts[:_MAX_SHOWN])
        more = f" and {len(conflicts) - _MAX_SHOWN} more" if len(conflicts) > _MAX_SHOWN else ""
        raise TemplateError(f"refusing to overwrite existing files in {dest}: {shown}{more}")
    _check_visible_to_nix(source_dir, info)

    nix.flake_new(f"{resources.flake_ref(source_dir)}#{template}", dest)
    files = tuple(dest / rel for rel in rel_files)
    _restore_executable_bits(info.path, dest, rel_files)
    if name is not None:
        _replace_name(files, name)

    git_initialized = git_staged = False
    if git.available():
        if git.find_repo_root(dest) is None:
            git.init(dest)
            git_initialized = True
        # stage exactly the new files: never other changes of the user's repository
        git.add(dest, list(rel_files))
        git_staged = True
    else:
        logger.warning("git not found: the new files are not staged (flakes need git or path:)")
    return InitResult(dest, template, files, git_initialized, git_staged)


def _find_template(template: str, flake_dir: Path) -> TemplateInfo:
    templates = {t.name: t for t in list_templates(flake_dir)}
    if template not in templates:
        known = ", ".join(sorted(templates)) or "none"
        raise TemplateError(f"unknown template '{template}' (available: {known})")
    return templates[template]


def _template_files(directory: Path) -> list[Path]:
    """Every file (and symlink) of a template, relative to it."""
    files = []
    for dirpath, _dirnames, filenames in os.walk(directory):
        for filename in filenames:
            files.append((Path(dirpath) / filename).relative_to(directory))
    return sorted(files)


def _check_visible_to_nix(flake_dir: Path, info: TemplateInfo) -> None:
    """A git checkout of repx shows nix only tracked files: say so instead of nix's error."""
    if (flake_dir / ".git").exists() and git.available():
        flake = info.path / "flake.nix"
        if not git.is_tracked(flake_dir, flake):
            raise TemplateError(
                f"template '{info.name}' is not tracked by git in {flake_dir} "
                f"(nix sees only tracked files: git add {info.path.relative_to(flake_dir)})"
            )


def _restore_executable_bits(source: Path, dest: Path, rel_files: list[Path]) -> None:
    """``nix flake new`` (2.8) drops the executable bit of template files: put it back."""
    for rel in rel_files:
        src = source / rel
        if not src.is_symlink() and os.access(src, os.X_OK):
            target = dest / rel
            target.chmod(target.stat().st_mode | 0o111)


def _replace_name(files: tuple[Path, ...], name: str) -> None:
    for file in files:
        if file.is_symlink() or not file.is_file():
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary file
        if NAME_PLACEHOLDER in text:
            file.write_text(text.replace(NAME_PLACEHOLDER, name), encoding="utf-8")
