"""Lab archives: a lab and its closure in one ``.tar`` or ``.tar.zst`` file, and back.

Written by ``repx export``; read wherever a command takes ``--lab``: an archive is unpacked
once into ``$XDG_CACHE_HOME/repx/labs/<sha256 of the archive>`` and then opened as a
directory lab. The archive holds the lab's tree as its integrity list describes it:

- relative symbolic links that stay inside the lab, and absolute links into a store path the
  lab carries (``/nix/store/<name>/…`` with ``store/<name>`` in the lab), are kept as links:
  inside the sandbox the lab's ``store/`` is ``/nix/store``, so they resolve there as natively;
- any other link (one leading out of the lab: a shared ``store/`` or ``host-tools/`` path)
  is replaced by what it leads to, which the integrity check accepts (a dereferenced copy);
  in particular the lab's own ``store/<name>`` and ``host-tools/<hash>`` links to the Nix
  store (lab/closure.json) become the real trees, which hold their inner links as they are,
  so each has its recorded NAR hash;
- members are in sorted order with fixed owner, mode (0755/0644) and time, so exporting the
  same lab twice gives the same bytes (and the same cache directory).

Unpacking refuses what Python's ``data`` extraction filter refuses (absolute or ``..``
member names, devices, links leading out of the directory), except for the absolute links
into ``/nix/store/<name>`` described above.
"""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from repx import process
from repx.dirs import cache_dir
from repx.errors import LabError, ProcessError, ProgramNotFoundError, one_line
from repx.lab.loader import LAB_METADATA

#: Suffixes of the archives repx writes and reads.
PLAIN: Final = ".tar"
ZSTD: Final = ".tar.zst"
#: The store directory absolute links of the lab point into.
_STORE: Final = "/nix/store/"
#: Fixed modification time of every member (Nix's, for the same reason: reproducible bytes).
_MTIME: Final = 1
_CHUNK: Final = 1 << 20

Progress = Callable[[int], None]


class ArchiveError(LabError):
    """An archive that cannot be written or read (one line, exit status 2)."""


@dataclass(frozen=True)
class Member:
    """One entry to write: its archive name and what it is on disk."""

    name: str
    source: Path  # the file or directory to read (links already followed when dereferenced)
    kind: Literal["file", "dir", "symlink"]
    size: int = 0
    executable: bool = False
    target: str = ""


def is_archive(path: Path) -> bool:
    """True when ``path`` names a lab archive (by its suffix)."""
    return path.name.endswith((PLAIN, ZSTD))


def members(root: Path) -> list[Member]:
    """Every entry of the lab at ``root`` as it goes into the archive, in archive order."""
    found: list[Member] = []
    carried = _carried_store_paths(root)
    _walk(root, "", carried, found, set())
    found.sort(key=lambda m: m.name)
    return found


def _carried_store_paths(root: Path) -> set[str]:
    store = root / "store"
    try:
        # links to store paths (a lab in the store) count: they are written as copies
        return {entry.name for entry in os.scandir(store) if os.path.exists(entry.path)}  # noqa: PTH110
    except OSError:
        return set()


def _walk(
    directory: Path, prefix: str, carried: set[str], out: list[Member], seen: set[str]
) -> None:
    real = os.path.realpath(directory)
    if real in seen:  # a link loop through dereferenced directories
        raise ArchiveError(f"{directory}: symbolic link loop in the lab")
    seen = seen | {real}
    with os.scandir(directory) as entries:
        for entry in entries:
            name = prefix + entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                target = os.readlink(path)  # noqa: PTH115
                if _kept_link(name, target, carried):
                    out.append(Member(name, path, "symlink", target=target))
                    continue
                if not path.exists():
                    raise ArchiveError(f"{path}: dangling symbolic link to '{target}'")
            if path.is_dir():
                out.append(Member(name, path, "dir"))
                _walk(path, f"{name}/", carried, out, seen)
            elif path.is_file():
                info = path.stat()
                out.append(Member(name, path, "file", info.st_size, bool(info.st_mode & 0o100)))
            else:
                raise ArchiveError(f"{path}: not a file, directory or symbolic link")


def _kept_link(name: str, target: str, carried: set[str]) -> bool:
    """A link that resolves inside the unpacked lab (or its carried closure) as it is."""
    if target.startswith(_STORE):
        store_name = target[len(_STORE) :].partition("/")[0]
        if name == f"store/{store_name}":
            return False  # the lab's link to the path it carries: the archive holds the path
        return store_name in carried and ".." not in target.split("/")
    if target.startswith("/"):
        return False
    depth = 0
    for part in [*name.split("/")[:-1], *target.split("/")]:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in {"", "."}:
            depth += 1
    return True


def write(
    root: Path, out: Path, progress: Progress | None = None, entries: list[Member] | None = None
) -> None:
    """Write the lab at ``root`` (its ``entries``, as :func:`members` lists them) to ``out``
    (``.tar`` or ``.tar.zst``), atomically: a temporary file renamed into place."""
    if entries is None:
        entries = members(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open rather than mkstemp: the archive gets the umask's mode (0644), not 0600
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    tar_path = tmp.with_suffix(".tar") if out.name.endswith(ZSTD) else tmp
    try:
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for member in entries:
                _add(tar, member)
                if progress is not None and member.size:
                    progress(member.size)
        if tar_path != tmp:
            _zstd(out, ["-f", "-T0", tar_path, "-o", tmp])
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        tar_path.unlink(missing_ok=True)


def _add(tar: tarfile.TarFile, member: Member) -> None:
    info = tarfile.TarInfo(member.name)
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.kind == "symlink":
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, member.target, 0o777
        tar.addfile(info)
    elif member.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = member.size, 0o755 if member.executable else 0o644
        with member.source.open("rb") as f:
            tar.addfile(info, f)


def _zstd(archive: Path, args: list[str | os.PathLike[str]]) -> None:
    try:
        process.run(["zstd", *args])
    except ProgramNotFoundError:
        raise ArchiveError(
            "zstd is not installed: install it (Debian: apt-get install zstd) or use a .tar"
        ) from None
    except ProcessError as exc:
        reason = exc.stderr.strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
        raise ArchiveError(one_line(f"{archive}: zstd failed: {reason[0]}")) from None


def digest(path: Path) -> str:
    """The sha256 (hex) of the archive's bytes: the key of its unpacked copy."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def unpacked(path: Path) -> Path:
    """The directory holding the unpacked archive ``path`` (unpacked now if needed):
    ``$XDG_CACHE_HOME/repx/labs/<sha256 of the archive>``, made by :func:`unpack_to`."""
    try:
        key = digest(path)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc.strerror}") from None
    final = cache_dir() / "labs" / key[:32]
    if final.is_dir():
        return final
    return unpack_to(path, final)


def unpack_to(path: Path, final: Path) -> Path:
    """Unpack the lab archive ``path`` into the directory ``final``; return ``final``.

    Unpacked into a temporary directory beside the final one and renamed into place, so a
    concurrent command sees either nothing or the whole lab; when two unpack at once, the
    first rename wins and the other's copy is removed. The temporary copies of unpacks
    killed on this host are removed first.
    """
    labs = final.parent
    try:
        labs.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(labs)
        tmp = Path(tempfile.mkdtemp(prefix=f".{socket.gethostname()}.{os.getpid()}.", dir=labs))
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot unpack into {labs}: {exc.strerror}") from None
    try:
        _extract(path, tmp)
        if not (tmp / LAB_METADATA).is_file():
            raise ArchiveError(f"{path}: not a repx lab archive ({LAB_METADATA} missing)")
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real failure
                raise
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot unpack into {labs}: {exc.strerror}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_abandoned(labs: Path) -> None:
    """Remove the temporary copies (and .tar files) of unpacks killed on this host.

    Named ``.<host>.<pid>.<random>``: a copy whose process is gone was abandoned; copies
    made on other hosts (a shared home) are left to those hosts.
    """
    host = socket.gethostname()
    for entry in labs.glob(f".{glob.escape(host)}.*"):
        pid = entry.name[len(host) + 2 :].partition(".")[0]
        if pid.isdigit() and not process.is_alive(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _extract(path: Path, dest: Path) -> None:
    tar_path = path
    if path.name.endswith(ZSTD):
        tar_path = dest.parent / f"{dest.name}.tar"
        _zstd(path, ["-d", "-f", path, "-o", tar_path])
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for member in _checked(tar, path, dest):
                tar.extract(member, dest, filter=_no_filter)
    except tarfile.TarError as exc:
        raise ArchiveError(one_line(f"{path}: not a lab archive ({exc})")) from None
    finally:
        if tar_path != path:
            tar_path.unlink(missing_ok=True)


def _checked(tar: tarfile.TarFile, path: Path, dest: Path) -> Iterator[tarfile.TarInfo]:
    """Each member after the ``data`` filter (store links allowed); refusals are one line."""
    for member in tar:
        try:
            if member.name.startswith("/"):  # the data filter would strip the "/"
                raise tarfile.AbsolutePathError(member)
            if member.issym() and _store_link(member.linkname):
                # the data filter refuses every absolute link; these lead into the closure
                # the lab carries (bound at /nix/store in the sandbox): check the rest
                checked = tarfile.data_filter(member.replace(linkname=".", deep=False), str(dest))
                yield checked.replace(linkname=member.linkname, deep=False)
            else:
                yield tarfile.data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            raise ArchiveError(
                one_line(f"{path}: member '{member.name}' refused: {exc} (not a repx lab archive?)")
            ) from None


def _store_link(target: str) -> bool:
    rest = target.removeprefix(_STORE)
    return rest != target and bool(rest) and ".." not in rest.split("/")


def _no_filter(member: tarfile.TarInfo, _dest: str) -> tarfile.TarInfo:
    return member  # already filtered by _checked
