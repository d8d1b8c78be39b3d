"""The ``ngi`` command: ``python -m ngi demo``, and more to come."""
from __future__ import annotations

import argparse
import sys

import ngi


def demo(args) -> int:
    """A word-count server and client talking through ngi.testing."""
    from ngi.demo import run_demo
    run_demo(print)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ngi", description="The Network Gateway Interface.")
    parser.add_argument("--version", action="version",
                        version=f"ngi {ngi.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser(
        "demo", help="a word-count server and client talking in memory")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
