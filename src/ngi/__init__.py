"""ngi: the Network Gateway Interface for Python 3.

Applications write small handler objects; implementations connect them to
the world: ``ngi.testing`` in memory, ``ngi.net`` over real sockets.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("ngi")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"
