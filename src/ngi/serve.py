"""``ngi serve``: run an ``IServer`` in production, on one core or several.

One process (the default) listens and serves.  With ``workers > 1`` a
supervisor process binds, then forks that many workers and restarts any
that dies.  The workers share the port in one of two ways:

* ``SO_REUSEPORT`` (TCP on Linux, the default): the supervisor opens one
  listening socket per worker on the same address; the kernel spreads new
  connections over them.  A worker's socket outlives the worker, so
  connections that arrive while it is being restarted wait in its backlog
  instead of being refused.
* one shared socket (Unix-domain addresses, systems other than Linux, or
  ``shared_socket=True``): every worker accepts from the same inherited
  listening socket.  macOS and the BSDs have ``SO_REUSEPORT`` too, but
  there the newest socket takes every connection instead of the kernel
  spreading them (FreeBSD's balancing option is ``SO_REUSEPORT_LB``), so
  the inherited socket is what spreads the load.

SIGTERM or SIGINT stops accepting at once, lets open connections finish
for up to ``grace`` seconds (``listener.close(handler)``, which calls each
handler's optional ``handle_drain``, so that idle connections can close at
once), then exits 0.  A second SIGTERM or SIGINT stops the open
connections at once.

With workers, the supervisor passes the first stop signal on as SIGTERM
(drain) and a second as SIGINT (stop now).  A worker drains on the first
stop signal from anyone, but is hurried only by its supervisor's SIGINT:
a Ctrl-C reaches the whole process group and systemd signals the whole
cgroup, so a worker often gets one stop twice, from there and from the
supervisor.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import sys
import threading
import time

import ngi._unixpath
import ngi.net

__all__ = ["raise_open_file_limit", "serve"]

logger = logging.getLogger("ngi.serve")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_QUICK_CRASH = 1.0   # a worker that dies younger than this is restarted late
_KILL_MARGIN = 5     # seconds past the grace before stragglers are killed
_DRAIN_POLL = 0.05   # seconds between looks at the drain while taking signals


def raise_open_file_limit():
    """Raise the soft RLIMIT_NOFILE to the hard one: one descriptor a connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        try:  # Linux refuses more than fs.nr_open
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        logger.warning("could not raise the open file limit from %d to %d: %s",
                       soft, target, e)
        return soft
    logger.debug("open file limit raised from %d to %d", soft, target)
    return target


def serve(server, address, workers=1, grace=30.0, shared_socket=False,
          ssl=None):
    """Serve ``server`` on ``address`` until SIGTERM/SIGINT; return 0.

    Binding happens before anything else, so a busy address raises OSError
    here.  ``ssl``, a server ``ssl.SSLContext``, serves TLS.
    """
    raise_open_file_limit()
    if workers == 1:
        return _Worker(server, grace).run(
            lambda impl: impl.listener(address, server, ssl=ssl))
    return _Supervisor(server, address, workers, grace, shared_socket,
                       ssl).run()


class _Worker:
    """One serving process: a listener on an ngi.net loop thread, while the
    main thread waits for a stop signal.

    The stop signals are blocked in every thread (the loop thread inherits
    the mask) and taken with ``sigwaitinfo``: no handler runs at a random
    point, so nothing can be interrupted halfway.
    """

    def __init__(self, server, grace, supervisor=None):
        self.server = server
        self.grace = grace
        self.supervisor = supervisor  # the supervisor's pid, for a worker

    def run(self, listen):
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        impl = ngi.net.Implementation(name="ngi-serve")
        listener = listen(impl)
        impl.start_thread()
        first = signal.sigwaitinfo(_STOP_SIGNALS)
        drained = threading.Event()
        listener.close(lambda listener: drained.set())  # and handle_drain
        logger.info("%s: stopping; %d connections open (grace %ss; a second "
                    "signal stops them at once)",
                    signal.Signals(first.si_signo).name,
                    len(listener.connections()), self.grace)
        hurried = self._from_supervisor(first, signal.SIGINT) or \
            self._drain(drained)
        if drained.is_set() or not listener.connections():
            logger.info("stopped")
            return 0
        if hurried:
            logger.warning("stopping %d connections now",
                           len(listener.connections()))
        else:
            logger.warning("%d connections still open after %ss; stopping them",
                           len(listener.connections()), self.grace)
        listener.close()  # their handlers get handle_close(..., 'stopped')
        drained.wait(1)
        return 0

    def _drain(self, drained):
        """Wait for the drain for up to the grace; True if a second stop
        signal came first."""
        deadline = time.monotonic() + self.grace
        while not drained.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            info = signal.sigtimedwait(_STOP_SIGNALS,
                                       min(remaining, _DRAIN_POLL))
            if info is not None and (self.supervisor is None or
                                     self._from_supervisor(info, signal.SIGINT)):
                return True
        return False

    def _from_supervisor(self, info, signum):
        return (self.supervisor is not None and info.si_signo == signum
                and info.si_pid == self.supervisor)


class _Supervisor:
    """Binds, forks ``count`` workers, restarts the ones that die, and
    passes a stop signal on to them.

    Like the workers, it takes signals (stop signals and SIGCHLD) with
    ``sigtimedwait`` in one plain loop instead of handlers.
    """

    _SIGNALS = (*_STOP_SIGNALS, signal.SIGCHLD)

    def __init__(self, server, address, count, grace, shared_socket, ssl=None):
        self.server = server
        self.ssl = ssl
        self.address = address
        self.count = count
        self.grace = grace
        # Only Linux balances connections over SO_REUSEPORT sockets.
        self.reuse_port = (not shared_socket and not isinstance(address, str)
                           and sys.platform.startswith("linux"))
        self.sockets = []      # one per worker slot (the same one, if shared)
        self.workers = {}      # pid -> (start time, slot)
        self.restarts = {}     # slot -> when to start its new worker
        self.stopping = False
        self.kill_at = None    # when to kill workers that outstay the grace

    def run(self):
        self._bind()
        how = "SO_REUSEPORT" if self.reuse_port else "one shared socket"
        logger.info("listening on %r", self.bound)
        logger.info("starting %d workers (%s)", self.count, how)
        signal.pthread_sigmask(signal.SIG_BLOCK, self._SIGNALS)
        for slot in range(self.count):
            self._start(slot)
        while self.workers or (self.restarts and not self.stopping):
            info = signal.sigtimedwait(self._SIGNALS, self._timeout())
            if info is None:
                pass
            elif info.si_signo == signal.SIGCHLD:
                self._reap()
            else:
                self._stop(info.si_signo)
            self._on_time()
        self._close_sockets()
        logger.info("stopped")
        return 0

    def _timeout(self):
        """Seconds until the next thing to do on time (a long wait if none)."""
        times = list(self.restarts.values())
        if self.kill_at is not None:
            times.append(self.kill_at)
        if not times:
            return 3600.0
        return max(0.0, min(times) - time.monotonic())

    def _on_time(self):
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            for pid in list(self.workers):
                logger.error("worker pid %d still running past the grace; "
                             "killing it", pid)
                _kill(pid, signal.SIGKILL)
        if not self.stopping:
            for slot, due in list(self.restarts.items()):
                if due <= now:
                    del self.restarts[slot]
                    self._start(slot)

    def _reap(self):
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            entry = self.workers.pop(pid, None)
            if entry is None or self.stopping:
                continue
            started, slot = entry
            logger.error("worker %d (pid %d) %s; restarting it", slot, pid,
                         _describe(status))
            # Don't spin on a worker that dies as soon as it starts.
            quick = time.monotonic() - started < _QUICK_CRASH
            self.restarts[slot] = time.monotonic() + (_QUICK_CRASH if quick else 0)

    def _stop(self, signum):
        if self.stopping:  # again: the workers stop their connections now
            logger.info("%s again: stopping %d workers now",
                        signal.Signals(signum).name, len(self.workers))
            for pid in list(self.workers):
                _kill(pid, signal.SIGINT)
            return
        self.stopping = True
        logger.info("%s: stopping %d workers", signal.Signals(signum).name,
                    len(self.workers))
        self._close_sockets()  # the workers' copies close as they stop
        for pid in list(self.workers):
            _kill(pid, signal.SIGTERM)
        self.kill_at = time.monotonic() + self.grace + _KILL_MARGIN

    def _bind(self):
        try:
            first = ngi.net.bind(self.address, reuse_port=self.reuse_port)
            self.sockets.append(first)
            name = first.getsockname()
            self.bound = name[:2] if first.family == socket.AF_INET6 else name
            for _ in range(self.count - 1):
                if self.reuse_port:
                    # Port 0 was resolved by the first bind; reuse that port.
                    self.sockets.append(ngi.net.bind(self.bound, reuse_port=True))
                else:
                    self.sockets.append(first)
        except BaseException:
            self._close_sockets()
            raise

    def _close_sockets(self):
        for sock in set(self.sockets):
            sock.close()
        if isinstance(self.address, str) and self.sockets:
            ngi._unixpath.release(self.address)
        self.sockets = []

    def _start(self, slot):
        pid = os.fork()
        if pid == 0:
            self._child(slot)  # never returns
        self.workers[pid] = (time.monotonic(), slot)
        logger.info("worker %d started (pid %d)", slot, pid)

    def _child(self, slot):
        status = 1
        try:
            # The stop signals stay blocked: the worker sigwaits for them.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
            mine = self.sockets[slot]
            for sock in set(self.sockets):
                if sock is not mine:
                    sock.close()
            status = _Worker(self.server, self.grace, os.getppid()).run(
                self._adopt(mine))
        except BaseException:
            logger.exception("worker %d failed", slot)
        finally:
            logging.shutdown()
            os._exit(status)

    def _adopt(self, sock):
        # The socket file of a Unix address stays the supervisor's to remove.
        return lambda impl: impl.listener(sock, self.server, ssl=self.ssl)


def _kill(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(status):
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
