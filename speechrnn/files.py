"""Files written whole or not at all: what a user saved (transcripts, settings, manifests, model
files, checkpoints, training logs) is never left half-written by a crash, a full disk or Ctrl-C.

The standard library's pieces (tempfile, os.replace) are put together here once; the packages
that do it (atomicwrites, no longer maintained; safer) would be a dependency for these lines.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable


def replace_atomically(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False, sync: bool = False) -> None:
    """Call ``write`` with a temporary file beside ``path`` (opened for text in UTF-8, or for
    bytes), then rename it over ``path``; on any error the temporary file is removed and
    ``path`` is as it was. A symbolic link is followed (the file it names is replaced, the link
    stays; a loop of links is an error). A file replaced keeps its permissions; a new one gets
    those ``open`` would give it (0666 less the umask). A path that is there but is not a file
    (``/dev/stdout``, ``/dev/null``, a terminal, a named pipe) is written to directly, as there
    is no file to keep whole and renaming over it would put a file in its place; a folder is an
    error. ``sync``: the data reach the disk before the rename (a checkpoint, a model file)."""
    try:
        mode = os.stat(path).st_mode  # (of what a link names; a loop of links raises ELOOP)
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
        return
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # (The name's first 40 characters only: a long name plus the temporary suffix must still
    # fit the file system's 255.)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())  # (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask (read by setting it, and set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` with :func:`replace_atomically`."""
    replace_atomically(path, lambda f: f.write(text))
