# Declarations of ngi's Cython core: the design document of its hot path.
#
# One extension module, ngi._core, in one file per concept (uvloop's
# layout): each declaration file below is included here and its code
# (_x.pxi) by _core.pyx.  Calls between them stay direct C calls.
#
#   _system.pxd      the C library, kernel and compiler facilities used
#   _platform.h      the poller (epoll or kqueue), the waker, socket twins
#   _openssl.h       the interpreter's OpenSSL, found in the ssl module
#   _poller.pxd/.pxi the poller and the waker, as the loop sees them
#   _loop.pxd/.pxi   watchers, timers, the loop, cross-thread operations
#   _connection.pxd/.pxi  the stream connection and its state machine
#   _endpoints.pxd/.pxi   listeners, connectors, UDP endpoints
#   _tls_layer.pxd/.pxi   TLS between a connection's socket and its handler
#   _framing.pxd/.pxi     records cut from a byte stream (lines, sized)
#   _aio_stream.pxd/.pxi  the hot half of an ngi.aio connection
#
# Thread ownership: a field is written by the loop thread only unless its
# comment says otherwise; a field other threads read or write is accessed
# with the atomic helpers of _system.pxd.

from libc.stdint cimport uint32_t, uint64_t
from cpython.pythread cimport PyThread_type_lock

include "_system.pxd"
include "_poller.pxd"
include "_loop.pxd"
include "_connection.pxd"
include "_endpoints.pxd"
include "_tls_layer.pxd"
include "_framing.pxd"
include "_aio_stream.pxd"
