"""The ``ngi`` command (also ``python -m ngi``).

``ngi echo``, ``ngi serve``, ``ngi bench`` and ``ngi demo``.  A mistake in
the arguments prints one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import pathlib
import sys

import ngi
from ngi import cli

VERSION = f"ngi {ngi.__version__}"
DEFAULT_ECHO_BIND = "127.0.0.1:8000"


class _Parser(argparse.ArgumentParser):
    """argparse, with errors in one line (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _setup_logging(level="info"):
    logging.basicConfig(
        stream=sys.stderr, level=level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")


# -- commands ------------------------------------------------------------------

class _Echo:
    """The server of ``ngi echo``: every byte received is sent back."""

    def __init__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        connection.write(data)

    def handle_close(self, connection, reason):
        pass


def echo(args: argparse.Namespace) -> int:
    """An echo server; stopping it closes open connections at once."""
    from ngi import serve
    try:
        address = cli.parse_bind(args.bind)
        context = cli.server_tls(args.certfile, args.keyfile, args.cafile)
    except cli.UsageError as e:
        return _fail("ngi echo", e)
    _setup_logging()
    try:
        return serve.serve(_Echo, address, grace=0, ssl=context)
    except OSError as e:
        print(f"ngi echo: cannot listen on {args.bind}: {e}", file=sys.stderr)
        return 1


def serve_command(args: argparse.Namespace) -> int:
    """Run MODULE:SERVER until SIGTERM/SIGINT."""
    from ngi import serve
    prog = "ngi serve"
    if args.workers < 1:
        return _fail(prog, f"--workers must be at least 1, not {args.workers}")
    if args.grace < 0:
        return _fail(prog, f"--grace must not be negative, not {args.grace}")
    try:
        address = cli.parse_bind(args.bind)
        context = cli.server_tls(args.certfile, args.keyfile, args.cafile)
        server = cli.load_server(args.server)
    except cli.UsageError as e:
        return _fail(prog, e)
    _setup_logging(args.log_level)
    try:
        return serve.serve(server, address, workers=args.workers,
                           grace=args.grace, shared_socket=args.shared_socket,
                           ssl=context)
    except OSError as e:
        print(f"{prog}: cannot listen on {args.bind}: {e}", file=sys.stderr)
        return 1


def demo(args: argparse.Namespace) -> int:
    """A word-count server and client talking through ngi.testing."""
    from ngi.demo import run_demo
    run_demo(print)
    return 0


# -- bench: hands its arguments to benchmarks/run.py -----------------------------

BENCH_HELP = """\
usage: ngi bench [ARGS ...]

Run the benchmark suite: benchmarks/run.py of an ngi source checkout, found
in the current directory or beside the installed package's source.  ARGS go
to it unchanged."""


def find_benchmarks():
    """benchmarks/run.py in the current directory, else in the checkout that
    ngi was installed from (editable installs), else None."""
    source_root = pathlib.Path(ngi.__file__).resolve().parent.parent.parent
    for root in (pathlib.Path.cwd(), source_root):
        run = root / "benchmarks" / "run.py"
        if run.is_file():
            return run
    return None


def bench(argv: list[str]) -> int:
    run = find_benchmarks()
    if argv[:1] in (["-h"], ["--help"]):
        print(BENCH_HELP)
        if run is not None:
            print(f"\n{run} says:", flush=True)
            _run_benchmarks(run, ["--help"])
        return 0
    if argv[:1] == ["--version"]:
        print(VERSION)
        return 0
    if run is None:
        return _fail("ngi bench", "benchmarks/run.py not found: run ngi bench "
                     "from the root of an ngi source checkout")
    return _run_benchmarks(run, argv)


def _run_benchmarks(run: pathlib.Path, argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("ngi_benchmarks_run", run)
    assert spec is not None and spec.loader is not None, run
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickle look it up
    sys.path.insert(0, str(run.parent))  # for its own sibling imports
    try:
        spec.loader.exec_module(module)
        return module.main(argv)
    except SystemExit as e:  # argparse inside run.py
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.path.remove(str(run.parent))


# -- the parser ----------------------------------------------------------------

def make_parser():
    parser = _Parser(prog="ngi", description="The Network Gateway Interface.")
    parser.add_argument("--version", action="version", version=VERSION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=_Parser)

    def command(name, func, help, description=None):
        p = commands.add_parser(name, help=help,
                                description=description or help)
        p.add_argument("--version", action="version", version=VERSION)
        p.set_defaults(func=func)
        return p

    def tls_options(p):
        p.add_argument("--certfile", metavar="FILE",
                       help="serve TLS with this certificate (PEM; it may "
                            "hold the key too)")
        p.add_argument("--keyfile", metavar="FILE",
                       help="the certificate's private key (PEM)")
        p.add_argument("--cafile", metavar="FILE",
                       help="require client certificates signed by these CAs")

    p = command("echo", echo, "an echo server (try it with nc or telnet)")
    p.add_argument("--bind", default=DEFAULT_ECHO_BIND, metavar="ADDR",
                   help="HOST:PORT, [V6HOST]:PORT or unix:PATH "
                        f"(default {DEFAULT_ECHO_BIND})")
    tls_options(p)

    p = command("serve", serve_command, "run a server in production",
                "Run MODULE:SERVER, a callable taking each new connection, "
                "until SIGTERM or SIGINT.")
    p.add_argument("server", metavar="MODULE:SERVER",
                   help="where the server is, e.g. examples.echo:Echo")
    p.add_argument("--bind", required=True, metavar="ADDR",
                   help="HOST:PORT, [V6HOST]:PORT or unix:PATH")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes sharing the port (default 1)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, how long open connections may "
                        "take to finish (default 30)")
    p.add_argument("--log-level", default="info", metavar="LEVEL",
                   type=str.lower, choices=cli.LOG_LEVELS,
                   help="debug, info, warning, error or critical (default info)")
    p.add_argument("--shared-socket", action="store_true",
                   help="with --workers, accept from one inherited socket "
                        "instead of one SO_REUSEPORT socket per worker")
    tls_options(p)

    # Listed here for --help; its arguments are parsed by benchmarks/run.py.
    command("bench", None, "run the benchmark suite (benchmarks/run.py)")
    command("demo", demo, "a word-count server and client talking in memory")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # One descriptor a connection: every command may need many.
    from ngi.serve import raise_open_file_limit
    raise_open_file_limit()
    if argv[:1] == ["bench"]:
        return bench(argv[1:])
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
