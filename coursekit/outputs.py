"""Where coursekit may write: one check for every file or folder it writes.

Every writer (``write_pcap``, ``python -m coursekit capture -o``, ``lab
compare --json``, ``lab up --out``, ``data``) goes through :func:`output_file`
or :func:`output_dir`, which refuse, with one :class:`CourseError`, anything
that is not an ordinary place for an ordinary file:

* an existing path that is not a regular file -- a folder, a FIFO, a socket,
  a **device** (``-o /dev/null`` as root must never turn the device into a
  regular file);
* anything under ``/proc``, ``/sys`` or ``/dev`` (kernel interfaces, not
  storage), after following symbolic links;
* a path whose folder does not exist, or is a file;
* a folder the user cannot write to.

:func:`write_file` then writes atomically: a temporary file in the same folder
renamed into place, so an error never leaves half a file and a reader never
sees one.  A symbolic link to a regular file is followed (the file it names
is replaced, as ``tcpdump -w`` would write through it).

Taught in: README (command line).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import CourseError

__all__ = ["output_file", "output_dir", "write_file"]

_KERNEL_TREES = ("/proc", "/sys", "/dev")
_ALLOWED_FILE = "a new or regular file in an existing folder you can write to"
_ALLOWED_DIR = "a new or existing folder you can write to, outside /proc, /sys and /dev"


def _as_path(path, field: str) -> Path:
    if isinstance(path, bytes):
        raise CourseError(field, "a path given as bytes", "a str or pathlib.Path")
    if not isinstance(path, (str, os.PathLike)):
        raise CourseError(field, f"{path!r} is not a path", "a str or pathlib.Path")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise CourseError(field, "an empty path", _ALLOWED_FILE)
    if "\0" in text:
        raise CourseError(field, "the path contains a NUL byte", _ALLOWED_FILE)
    if len(text.encode("utf-8", "surrogateescape")) > 4095:
        raise CourseError(field, f"the path is {len(text)} characters long", "at most 4095 bytes (PATH_MAX)")
    return Path(text).expanduser()


def _kernel_tree(real: str) -> str | None:
    for top in _KERNEL_TREES:
        if real == top or real.startswith(top + "/"):
            return top
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _stat(p: str):
    try:
        return os.stat(p)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "under-file"
    except OSError as e:
        return e


def _check_folder(folder: str, shown: Path, field: str, allowed: str) -> None:
    st = _stat(folder)
    if st is None:
        raise CourseError(field, f"folder {folder} does not exist", allowed)
    if st == "under-file" or (not isinstance(st, OSError) and not stat.S_ISDIR(st.st_mode)):
        raise CourseError(field, f"{shown}: a part of the path before it is a file, not a folder", allowed)
    if isinstance(st, OSError):
        raise CourseError(field, f"{shown}: {st.strerror}", allowed)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CourseError(field, f"folder {folder} is not writable for you", allowed)


def output_file(path, field: str = "output") -> Path:
    """The real path a file may be written to, or :class:`CourseError` saying why not."""
    p = _as_path(path, field)
    real = os.path.realpath(p)
    st = _stat(real)
    if st == "under-file":
        raise CourseError(field, f"{p}: a part of the path before it is a file, not a folder", _ALLOWED_FILE)
    if st is not None and not isinstance(st, OSError) and not stat.S_ISREG(st.st_mode):
        raise CourseError(field, f"{p} is {_kind(st.st_mode)}; coursekit never replaces one", _ALLOWED_FILE)
    top = _kernel_tree(real)
    if top:
        raise CourseError(field, f"{p} is under {top}, which holds kernel interfaces, not files", _ALLOWED_FILE)
    if isinstance(st, OSError):
        raise CourseError(field, f"{p}: {st.strerror}", _ALLOWED_FILE)
    if st is not None and not os.access(real, os.W_OK):
        raise CourseError(field, f"{p} is read-only for you", _ALLOWED_FILE)
    _check_folder(os.path.dirname(real) or ".", p, field, _ALLOWED_FILE)
    return Path(real)


def output_dir(path, field: str = "output folder") -> Path:
    """A folder that may be created (with its parents) and written into."""
    p = _as_path(path, field)
    real = os.path.realpath(p)
    top = _kernel_tree(real)
    if top:
        raise CourseError(field, f"{p} is under {top}, which holds kernel interfaces, not files", _ALLOWED_DIR)
    probe = real
    while True:                          # the nearest part of the path that exists
        st = _stat(probe)
        if st == "under-file":
            raise CourseError(field, f"{p}: a part of the path is a file, not a folder", _ALLOWED_DIR)
        if isinstance(st, OSError):
            raise CourseError(field, f"{p}: {st.strerror}", _ALLOWED_DIR)
        if st is not None:
            break
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise CourseError(field, f"{probe if probe != real else p} is {_kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}, not a folder",
                          _ALLOWED_DIR)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CourseError(field, f"folder {probe} is not writable for you", _ALLOWED_DIR)
    return Path(real)


def write_file(path, data: bytes | str, field: str = "output") -> Path:
    """Write ``data`` atomically to a path :func:`output_file` accepts; returns the path as given."""
    target = output_file(path, field)
    if isinstance(data, str):
        data = data.encode("utf-8")
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ck-", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise CourseError(field, f"cannot write in {target.parent}: {e.strerror}", _ALLOWED_FILE) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~umask)        # what open(2) would have given a new file
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CourseError(field, f"cannot write {path}: {e.strerror}", _ALLOWED_FILE) from None
        raise
    return Path(path)
