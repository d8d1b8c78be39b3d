"""``ngi serve``: addresses, loading servers, and real serving processes.

The process tests run ``python -m ngi serve`` on loopback (or a temporary
Unix socket) and stop it with a signal, with every wait bounded.
"""
from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ngi import cli, serve

from helpers import wait_for

SERVER_MODULE = textwrap.dedent('''
    """A server for the tests: each message is a command."""
    import os
    import resource


    class Server:
        def __init__(self, connection):
            connection.set_handler(self)

        def handle_input(self, connection, data):
            if data == b"pid":
                connection.write(b"%d" % os.getpid())
            elif data == b"die":
                os._exit(3)
            elif data == b"nofile":
                connection.write(b"%d %d" % resource.getrlimit(resource.RLIMIT_NOFILE))
            else:
                connection.write(data)

        def handle_close(self, connection, reason):
            pass


    server = Server
''')


class Served:
    """A ``python -m ngi ARGS`` process, its stderr collected in the background.

    ``address`` is what it logged as ``listening on ...``.
    """

    def __init__(self, args, cwd=None, wait_for="listening on", timeout=20,
                 new_session=False):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ngi", *args], cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=new_session)
        self.lines = []
        self.changed = threading.Condition()
        self.collector = threading.Thread(target=self._collect, daemon=True)
        self.collector.start()
        self.address = None
        if wait_for:
            line = self.wait_for(wait_for, timeout)
            self.address = _logged_address(line)

    def _collect(self):
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # EOF
            self.changed.notify_all()

    @property
    def log(self):
        return "".join(line for line in self.lines if line)

    def wait_for(self, text, timeout=20):
        """The first stderr line containing ``text``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if line is None:
                        raise AssertionError(
                            f"exited before logging {text!r}:\n{self.log}")
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {text!r} in:\n{self.log}")
                self.changed.wait(remaining)

    def count(self, text):
        return sum(1 for line in list(self.lines) if line and text in line)

    def stop(self, signum=signal.SIGTERM, timeout=20):
        """Signal the process and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()
            with self.changed:  # let the collector read the last lines
                self.changed.wait_for(lambda: None in self.lines, 10)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.collector.join(10)  # it ends at EOF on stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.kill()


def _logged_address(line):
    match = re.search(r"listening on \('([^']*)', (\d+)\)", line)
    if match:
        return match.group(1), int(match.group(2))
    return re.search(r"listening on '([^']*)'", line).group(1)


def ask(address, message, timeout=10):
    """Connect, send ``message``, return the reply (one recv)."""
    with connect(address, timeout) as sock:
        sock.sendall(message)
        return sock.recv(65536)


def connect(address, timeout=10):
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(address, timeout=timeout)


@pytest.fixture
def app(tmp_path):
    """A directory holding the test server module ``served``."""
    (tmp_path / "served.py").write_text(SERVER_MODULE)
    return tmp_path


def serve_args(*extra, bind="127.0.0.1:0"):
    return ["serve", "served:server", "--bind", bind, *extra]


# -- parse_bind, load_server, the descriptor limit ---------------------------------

@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)),
    ("localhost:0", ("localhost", 0)),
    (":8000", ("", 8000)),
    ("[::1]:8000", ("::1", 8000)),
    ("[::]:80", ("::", 80)),
    ("unix:/tmp/x.sock", "/tmp/x.sock"),
    ("unix:relative.sock", "relative.sock"),
])
def test_parse_bind(text, address):
    assert cli.parse_bind(text) == address


@pytest.mark.parametrize("text", [
    "", "8000", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "host:65536",
    "::1:8000", "[::1]8000", "[127.0.0.1]:80", "unix:", "host:-1",
])
def test_parse_bind_refuses(text):
    with pytest.raises(cli.UsageError, match="invalid address"):
        cli.parse_bind(text)


def test_load_server(app, monkeypatch):
    monkeypatch.chdir(app)
    monkeypatch.syspath_prepend(str(app))
    assert cli.load_server("served:server").__name__ == "Server"
    assert cli.load_server("served:Server.handle_input")


@pytest.mark.parametrize("spec, message", [
    ("served", "expected MODULE:SERVER"),
    (":server", "expected MODULE:SERVER"),
    ("served:", "expected MODULE:SERVER"),
    ("no_such_module_here:server", "cannot import 'no_such_module_here'"),
    ("served:nothing", "has no 'nothing'"),
    ("served:os", "is not callable"),
])
def test_load_server_refuses(app, monkeypatch, spec, message):
    monkeypatch.syspath_prepend(str(app))
    with pytest.raises(cli.UsageError, match=message):
        cli.load_server(spec)


def test_a_module_that_fails_to_import_shows_its_own_error(tmp_path, monkeypatch):
    (tmp_path / "broken_served.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        cli.load_server("broken_served:server")


def test_raise_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        raised = serve.raise_open_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- one process --------------------------------------------------------------

def test_serve_one_process(app):
    with Served(serve_args(), cwd=app) as served:
        assert ask(served.address, b"hello") == b"hello"
        soft, hard = map(int, ask(served.address, b"nofile").split())
        assert soft == hard or hard == resource.RLIM_INFINITY
        assert served.stop() == 0
    assert "stopped" in served.log


def test_sigint_stops_too(app):
    with Served(serve_args(), cwd=app) as served:
        assert served.stop(signal.SIGINT) == 0


def test_stop_lets_open_connections_finish(app):
    with Served(serve_args("--grace", "20"), cwd=app) as served:
        client = connect(served.address)
        client.sendall(b"before")
        assert client.recv(100) == b"before"
        served.process.send_signal(signal.SIGTERM)
        served.wait_for("1 connections open")
        # No longer accepting, but the open connection still works...
        with pytest.raises(OSError):
            ask(served.address, b"new", timeout=2)
        client.sendall(b"after")
        assert client.recv(100) == b"after"
        # ... and its close ends the process, long before the grace.
        started = time.monotonic()
        client.close()
        assert served.stop(timeout=10) == 0
        assert time.monotonic() - started < 5


def test_grace_runs_out(app):
    with Served(serve_args("--grace", "0.5"), cwd=app) as served:
        client = connect(served.address)
        client.sendall(b"x")
        assert client.recv(100) == b"x"
        started = time.monotonic()
        assert served.stop() == 0
        assert time.monotonic() - started < 10
        assert "1 connections still open after 0.5s" in served.log
        assert client.recv(100) == b""  # closed by the exit
        client.close()


def test_unix_socket(app, tmp_path):
    path = str(tmp_path / "s.sock")
    with Served(serve_args(bind=f"unix:{path}"), cwd=app) as served:
        assert served.address == path
        assert ask(path, b"over unix") == b"over unix"
        assert served.stop() == 0
    assert not os.path.exists(path)


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback here")
def test_ipv6(app):
    with Served(serve_args(bind="[::1]:0"), cwd=app) as served:
        assert served.address[0] == "::1"
        assert ask(served.address, b"v6") == b"v6"
        assert served.stop() == 0


def test_log_level(app, tmp_path):
    path = str(tmp_path / "quiet.sock")
    with Served(serve_args("--log-level", "WARNING", bind=f"unix:{path}"),
                cwd=app, wait_for=None) as served:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline and served.process.poll() is None
            time.sleep(0.05)
        assert ask(path, b"hi") == b"hi"
        assert served.stop() == 0
    assert "INFO" not in served.log


def test_busy_address_fails_in_one_line(app):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ngi", *serve_args(bind=f"127.0.0.1:{port}")],
            cwd=app, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ngi serve: cannot listen on 127.0.0.1:{port}: "
        "[Errno 98] Address already in use")


# -- several workers ------------------------------------------------------------

def pids(address, tries=60):
    """The worker pids that answer ``tries`` fresh connections."""
    return {ask(address, b"pid") for _ in range(tries)}


@pytest.mark.parametrize("sharing", ["reuseport", "shared-socket"])
def test_workers_share_the_port(app, sharing):
    extra = ["--shared-socket"] if sharing == "shared-socket" else []
    with Served(serve_args("--workers", "2", *extra), cwd=app) as served:
        how = "one shared socket" if extra else "SO_REUSEPORT"
        served.wait_for(f"starting 2 workers ({how})")
        seen = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= pids(served.address, 20)
        assert len(seen) == 2
        supervisor = str(served.process.pid).encode()
        assert supervisor not in seen
        assert served.stop() == 0
        assert served.count("stopped") == 3  # two workers and the supervisor
    for pid in seen:
        assert not os.path.exists(f"/proc/{int(pid)}")


def test_a_crashed_worker_is_restarted(app):
    with Served(serve_args("--workers", "2"), cwd=app) as served:
        with connect(served.address) as doomed:
            doomed.sendall(b"die")
            assert doomed.recv(100) == b""
        served.wait_for("exited with status 3; restarting it")
        served.wait_for("started", timeout=20)
        wait_for(lambda: served.count("started (pid") >= 3, 20,
                 lambda: f"a third worker start in:\n{served.log}")
        # Every connection is still served: by the survivor, or by the
        # new worker once it is up (SO_REUSEPORT keeps the dead one's queue).
        for _ in range(20):
            assert ask(served.address, b"still") == b"still"
        assert served.stop() == 0


def test_workers_on_a_unix_socket(app, tmp_path):
    path = str(tmp_path / "w.sock")
    with Served(serve_args("--workers", "2", bind=f"unix:{path}"),
                cwd=app) as served:
        served.wait_for("starting 2 workers (one shared socket)")
        assert ask(path, b"shared") == b"shared"
        assert served.stop() == 0
    assert not os.path.exists(path)


def test_workers_stop_accepting_then_drain(app):
    with Served(serve_args("--workers", "2", "--grace", "20"),
                cwd=app) as served:
        client = connect(served.address)
        client.sendall(b"open")
        assert client.recv(100) == b"open"
        served.process.send_signal(signal.SIGTERM)
        served.wait_for("stopping 2 workers")
        served.wait_for("1 connections open")
        wait_for(lambda: served.count("connections open") >= 2, 20,  # both workers
                 lambda: f"both workers stopping in:\n{served.log}")
        # Not served: refused, reset, or closed without a reply.  (A
        # connection the kernel queued before the listening socket closed
        # gets a FIN, not a reset, when its data had not arrived yet.)
        try:
            reply = ask(served.address, b"new", timeout=2)
        except OSError:
            reply = None
        assert not reply, reply
        client.sendall(b"still open")
        assert client.recv(100) == b"still open"
        client.close()
        assert served.stop(timeout=15) == 0
