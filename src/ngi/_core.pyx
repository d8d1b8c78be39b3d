# cython: language_level=3
"""ngi's Cython core: the poller, the loop, and the sockets' hot paths.

One extension module in one file per concept (see _core.pxd for the map):
_poller.pxi, _loop.pxi, _connection.pxi, _endpoints.pxi, with small shared
helpers in _helpers.pxi.  Choices, and why:

* **Connections are edge-triggered, registered once.**  A connection is
  added to the poller when it is created, for input, output and hang-up,
  edge-triggered (EPOLLET, kqueue's EV_CLEAR), and never modified: no
  system call when a write has to wait, and no re-poll of every socket
  that was ready in the previous pass, as level triggering does.  The price is that an edge, once reported, never comes
  back, so the core keeps its own list of connections that may still have
  work (`Loop.ready`): one that stopped reading at the per-pass bound (so
  one busy peer cannot starve the rest), one that just got its handler or
  resumed reading (input may have arrived while nobody read), one whose
  queue holds an iterator to pull.  A read shorter than the buffer means
  the socket was drained, since anything arriving later makes a new edge;
  after a hang-up edge the reader goes on to EOF.  Listeners, connectors
  and UDP sockets stay level-triggered: they are few and not hot.
* **Tokens, not lookups.**  Each registration carries a pointer to its
  `Watcher` in the event's data, so dispatch needs no dict lookup.  The loop
  holds a strong reference to every registered watcher, and one removed
  during a pass is kept alive until the pass ends, because a later event of
  the same batch may still point to it (its `fd` is then -1 and it is
  skipped).
* **Write at once, queue the rest.**  On the loop thread a `write` with
  nothing queued goes straight to `send`; only the unsent remainder is
  queued, and queued chunks leave together through `sendmsg`.
* **One receive buffer per loop.**  `recv` lands in a loop-owned buffer and
  the `bytes` handed to `handle_input` is the only object built per read.
* **Other threads only enqueue, and name what they ask for.**  They append
  an operation, its receiver and its argument to a lock-protected list and
  wake the loop through an eventfd (see _loop.pxi); no Python closure is
  made per call.  What they change directly (a close request, pause, the
  write marks, bytes in transit) they change with atomic operations, and
  what they read of the loop's state (a connection's state, its queued
  bytes, the loop's activity) the loop writes atomically: nothing relies
  on the GIL, the groundwork for free-threaded CPython.
* **SIGPIPE.**  Every send uses MSG_NOSIGNAL (SO_NOSIGPIPE on each socket
  where that flag is missing); a broken pipe is an EPIPE that becomes a
  `handle_close`.
* **One poller interface.**  epoll or kqueue, the waker and the socket
  calls that differ between platforms are behind _platform.h, chosen when
  the core is built; `POLLER` names the one compiled in.
* **TLS is a layer of the connection**, over the `ssl` module's memory
  BIOs: records are decrypted into the loop's buffer, the writes of a
  pass are encrypted together and leave in one send (_tls_layer.pxi).
* **Nothing written is lost to a close.**  The peer's EOF ends input, not
  output: what was queued is still sent.  Our own close sends a FIN, then,
  if a TCP reset could still destroy data on its way (input unread, data
  unacknowledged), lingers, dropping input until the peer's EOF, as web
  servers do.  The connection's state table is in `Connection`'s docstring.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_SIZE
from cpython.bytearray cimport (
    PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE,
    PyByteArray_Resize)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
    PyThread_free_lock, PyThread_get_thread_ident, PyThread_release_lock)
from libc.errno cimport (
    EAGAIN, ECONNABORTED, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, errno)
from libc.string cimport memcpy, memmove, memset, strerror, strlen
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close as c_close

import _ssl
import heapq
import logging
import os
import ssl

from ngi import _rules, _tls, _unixpath
from ngi.interfaces import ConnectionClosed

# The poller's events a test can ask for (the loop's vocabulary).
EVENT_READ = NGI_IN
EVENT_WRITE = NGI_OUT

cdef enum:
    MAX_IOV = 64              # buffers gathered into one sendmsg
    READS_PER_EVENT = 4       # recv calls one socket gets per pass
    ACCEPTS_PER_EVENT = 64    # accept calls one listener gets per pass
    DATAGRAMS_PER_EVENT = 32  # recvfrom calls one UDP socket gets per pass
    PULL_BYTES = 262144       # bytes pulled from a writelines iterator per round
    PULL_ITEMS = 1024         # items pulled from a writelines iterator per round
    FLUSH_ROUNDS = 16         # sendmsg rounds per writable event
    JOIN_HELD = 16384         # bytes: a handler call's writes up to this are
                              # copied into one buffer for one send (cheaper
                              # than a sendmsg of many small parts)

# How a connection is registered, once, for its whole life (with kqueue,
# the write filter comes and goes: see watch_writable).
cdef uint32_t CONNECTION_EVENTS = (
    NGI_IN | NGI_RDHUP | NGI_ET | (0 if NGI_WRITE_ON_DEMAND else NGI_OUT))

# The write-buffer marks a connection starts with (the contract's, in _rules).
cdef Py_ssize_t DEFAULT_HIGH = _rules.DEFAULT_HIGH
cdef Py_ssize_t DEFAULT_LOW = _rules.DEFAULT_LOW

cdef double ACCEPT_PAUSE = 0.5  # seconds an out-of-descriptors listener rests
cdef double LINGER_SECONDS = 5.0  # longest wait for the peer's EOF after ours

cdef tuple STATE_NAMES = ("open", "flushing", "lingering", "closed")

cdef object _log = logging.getLogger("ngi.net")
# Child loggers that say where a record comes from, so that an application
# can filter them: listeners and their accepts, connects, UDP endpoints.
cdef object _server_log = logging.getLogger("ngi.net.server")
cdef object _client_log = logging.getLogger("ngi.net.client")
cdef object _udp_log = logging.getLogger("ngi.net.udp")
cdef int DEBUG = logging.DEBUG

include "_helpers.pxi"
include "_poller.pxi"
include "_loop.pxi"
include "_connection.pxi"
include "_endpoints.pxi"
include "_tls_layer.pxi"
include "_framing.pxi"
include "_aio_stream.pxi"
