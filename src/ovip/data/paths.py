"""What a path is, for one-line messages about data and image files (a leaf of `ovip.data`)."""

from __future__ import annotations

import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a regular file, or None: "not found", "is not a regular file (a FIFO)"
    (a folder, a device, a socket: reading one would fail, block or never end), or the OS's reason (a name
    too long, no permission). Symbolic links are followed. Never raises."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "not found"
    except (OSError, ValueError) as e:  # ENAMETOOLONG, EACCES, ELOOP; ValueError: a NUL byte in the name
        reason = str(getattr(e, "strerror", None) or e)
        return f"cannot be read ({reason[:1].lower()}{reason[1:]})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"is not a regular file ({kind})"


def shown(path, limit: int = 160) -> str:
    """`path` for a one-line message: a name of thousands of characters is cut in the middle."""
    text = str(path)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...({len(text):,} characters)...{text[-limit // 4 :]}"
