"""Command-line values of the ``ngi`` commands: addresses, servers, TLS.

``parse_bind``, ``load_server`` and ``server_tls`` turn what a user typed
into what ``ngi.serve.serve`` takes; a bad value raises ``UsageError``,
which the command reports in one line with exit status 2.
"""
from __future__ import annotations

import importlib
import os
import ssl
import sys

__all__ = ["UsageError", "parse_bind", "load_server", "server_tls",
           "LOG_LEVELS"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class UsageError(ValueError):
    """A bad command-line value: reported in one line, exit status 2."""


def parse_bind(text):
    """Turn ``HOST:PORT``, ``[V6HOST]:PORT`` or ``unix:PATH`` into an NGI address.

    An empty host (``:8000``) means every IPv4 interface.
    """
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise UsageError(f"invalid address {text!r}: unix:PATH needs a path")
        return path
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise UsageError(f"invalid address {text!r}: expected [V6HOST]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise UsageError(f"invalid address {text!r}: expected HOST:PORT, "
                             "[V6HOST]:PORT or unix:PATH")
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"invalid address {text!r}: the port must be a "
                         "number in 0..65535")
    return (host, int(port))


def load_server(spec):
    """Import ``MODULE:NAME`` (NAME may be dotted) and return the callable.

    The current directory is searched first, as ``python -m`` would.
    """
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"invalid server {spec!r}: expected MODULE:SERVER, "
                         "for example examples.echo:Echo")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only the named module missing is a usage error; a module that
        # fails to import something itself shows its traceback.
        if e.name is None or not (module_name + ".").startswith(e.name + "."):
            raise
        raise UsageError(f"cannot import {module_name!r}: {e}") from None
    server = module
    for part in name.split("."):
        try:
            server = getattr(server, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no {name!r}") from None
    if not callable(server):
        raise UsageError(f"{spec} is not callable: a server is a callable "
                         "taking a connection")
    return server


def server_tls(certfile, keyfile=None, cafile=None):
    """The server's ``ssl.SSLContext`` for ``--certfile``/``--keyfile``/
    ``--cafile``, or None when none is given (plaintext).

    ``--keyfile`` may be left out when the certificate file holds the key;
    ``--cafile`` makes client certificates required, checked against it.
    """
    if certfile is None:
        if keyfile is not None or cafile is not None:
            raise UsageError("--keyfile and --cafile need --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as e:
        files = certfile if keyfile is None else f"{certfile} and {keyfile}"
        raise UsageError(f"cannot load the certificate from {files}: {e}") from None
    if cafile is not None:
        try:
            context.load_verify_locations(cafile)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"cannot load the CA certificates from {cafile}: "
                             f"{e}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
