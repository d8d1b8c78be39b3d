"""The README's echo server runs as written: its test passes in memory,
and saved as a file it serves until Ctrl-C, then exits cleanly."""
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
ADDRESS = '("127.0.0.1", 8000)'


def blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_echo_example(capsys):
    server, test = blocks()[0], blocks()[1]
    namespace = {"__name__": "echo"}  # imported, not run: nothing listens
    exec(server, namespace)
    exec(test, namespace)
    namespace["test_echo"](capsys)


class Script:
    """``python echo.py`` (the README's program on a free port)."""

    def __init__(self, tmp_path):
        program = blocks()[0]
        assert ADDRESS in program
        path = tmp_path / "echo.py"
        path.write_text(program.replace(ADDRESS, '("127.0.0.1", 0)'))
        self.process = subprocess.Popen(
            [sys.executable, str(path)], cwd=tmp_path, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        line = self.process.stderr.readline()  # logging's first line
        match = re.search(r"listening on \('127\.0\.0\.1', (\d+)\)", line)
        assert match, line + self.finish(signal.SIGKILL)[1]
        self.address = ("127.0.0.1", int(match.group(1)))

    def finish(self, signum=signal.SIGINT, timeout=20):
        """Send ``signum``; return the exit status and the rest of stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            _, err = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate(timeout=10)
        return self.process.returncode, err


def test_the_readme_program_serves_until_ctrl_c_and_exits_cleanly(tmp_path):
    script = Script(tmp_path)
    try:
        time.sleep(0.5)
        assert script.process.poll() is None  # still serving
        with socket.create_connection(script.address, timeout=10) as sock:
            sock.sendall(b"hello")
            assert sock.recv(10) == b"hello"
    finally:
        status, err = script.finish(signal.SIGINT)
    assert status == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "SIGINT: stopping" in err and "stopped" in err


def test_ctrl_c_twice_stops_the_readme_program_with_a_client_still_connected(tmp_path):
    script = Script(tmp_path)
    sock = socket.create_connection(script.address, timeout=10)
    try:
        sock.sendall(b"x")
        assert sock.recv(10) == b"x"
        script.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert script.process.poll() is None  # the client may still finish
        started = time.monotonic()
        status, err = script.finish(signal.SIGINT)
        assert time.monotonic() - started < 10
        assert sock.recv(10) == b""
    finally:
        sock.close()
    assert status == 0, err
    assert "Traceback" not in err
