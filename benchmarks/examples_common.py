"""What the examples' benchmarks share: starting servers and printing tables.

The servers run from the repository root (so ``examples`` imports), each in
a process of its own, on loopback.
"""
import os
import pathlib
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A server process that listens on ``port``; stopped with SIGTERM."""

    def __init__(self, name, argv, port, cpus=None):
        self.name = name
        self.port = port
        self.process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL)
        if cpus is not None:
            os.sched_setaffinity(self.process.pid, cpus)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((HOST, port), 1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"{name} did not start")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def ngi_serve(spec, port, *extra):
    """The argv of ``ngi serve`` for ``spec`` on ``port``."""
    return [sys.executable, "-m", "ngi", "serve", spec, "--bind",
            f"{HOST}:{port}", "--log-level", "warning", "--grace", "1", *extra]


def pin_client():
    """Run clients on the last CPU, servers (see Server's cpus) on the first."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[-1]}


def table(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine():
    return (f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"{os.uname().sysname} {os.uname().release}")
