"""rsync: copies to and from SSH targets over the command's one ssh connection.

Every transfer runs ``rsync --stats`` with ``-e`` set to that connection's ssh command, so
it reuses the master connection; :class:`Transfer` holds the figures rsync reports (bytes
sent and received, files transferred), which repx prints and the tests measure.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError
from repx.ssh import Connection, RemoteError, last_line

#: rsync's "partial transfer" exit statuses are errors too: nothing is renamed into place.
_NO_SPACE: Final = "No space left on device"
_STAT: Final = re.compile(
    r"^(Total bytes sent|Total bytes received|Number of regular files"
    r" transferred): ([\d,]+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Transfer:
    """What one rsync call moved."""

    sent: int = 0
    received: int = 0
    files: int = 0

    def __add__(self, other: Transfer) -> Transfer:
        return Transfer(
            self.sent + other.sent, self.received + other.received, self.files + other.files
        )


def copy(
    connection: Connection,
    sources: Sequence[str],
    destination: str,
    *,
    options: Sequence[str] = (),
    rsync_path: str | None = None,
    what: str = "files",
) -> Transfer:
    """``rsync -a OPTIONS SOURCES… DESTINATION``; remote paths are ``connection:path``
    (written ``:path`` here: the address is added). A failure is one :class:`RemoteError`
    line (a full remote disk says so)."""
    connection.open()
    argv = [
        "rsync",
        "-a",
        "--stats",
        "-e",
        shlex.join(connection.ssh_argv()),
        *(["--rsync-path", rsync_path] if rsync_path else []),
        *options,
        "--",
        *(_address(connection, s) for s in sources),
        _address(connection, destination),
    ]
    try:
        result = process.run(argv, check=False)
    except ProgramNotFoundError:
        raise RemoteError(f"{connection.label}: rsync is not installed on this machine") from None
    if result.returncode != 0:
        if _NO_SPACE in result.stderr:
            raise RemoteError(f"{connection.label}: disk full while copying {what} ({_NO_SPACE})")
        raise RemoteError(f"{connection.label}: copying {what} failed: {last_line(result.stderr)}")
    return parse_stats(result.stdout)


def parse_stats(text: str) -> Transfer:
    """The figures of ``rsync --stats`` output."""
    found = {key: int(value.replace(",", "")) for key, value in _STAT.findall(text)}
    return Transfer(
        sent=found.get("Total bytes sent", 0),
        received=found.get("Total bytes received", 0),
        files=found.get("Number of regular files transferred", 0),
    )


def _address(connection: Connection, path: str) -> str:
    return f"{connection.address}{path}" if path.startswith(":") else path
