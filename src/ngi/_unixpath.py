"""The life of a Unix socket's file: claimed before bind, removed at close.

A listener that binds a path owns the file it creates; whoever closes it
removes the file.  A file left behind by a dead process (nothing accepts on
it) is replaced; a live one is refused and left alone.  ``ngi.net``,
``ngi serve`` and the core call these two functions and nothing else
touches the file.
"""
from __future__ import annotations

import errno
import os
import socket
import stat

__all__ = ["claim", "release"]


def claim(path: str) -> None:
    """Make ``path`` free to bind: remove a stale socket file there.

    Raises ``OSError(EADDRINUSE)`` if a live socket accepts on it; a path
    that is not a socket is left for ``bind`` to refuse.
    """
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    else:
        raise OSError(errno.EADDRINUSE, f"{path} is in use by a live socket")
    finally:
        probe.close()


def release(path: str | None) -> None:
    """Remove the socket file a closing listener made (gone already: fine)."""
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
