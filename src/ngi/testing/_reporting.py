"""How ngi.testing reports an exception from application code.

It is printed with its traceback (so that it shows up in a doctest) and
logged under ``ngi.testing``; then the implementation carries on.  Lists
in ``observers`` collect each one too (the pytest plugin's, which fails a
test that asked for it).
"""
from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

logger = logging.getLogger("ngi.testing")
# Errors are printed already; without this, Python's last-resort handler
# would print them a second time, to stderr, when logging is not set up.
logger.addHandler(logging.NullHandler())

# Each list gets a (what, exception) pair per report.
observers: list[list[tuple[str, BaseException]]] = []


def report(what: str, exc: BaseException) -> None:
    """Print and log an exception from application code, then carry on."""
    print(f"ngi.testing: {what} raised an exception:")
    print("".join(traceback.format_exception(type(exc), exc,
                                             exc.__traceback__)),
          end="")
    logger.error("%s raised an exception", what,
                 exc_info=(type(exc), exc, exc.__traceback__))
    for seen in observers:
        seen.append((what, exc))


def call(func: Callable[..., Any], what: str, *args: Any) -> None:
    """Call an application callback, reporting what it raises."""
    try:
        func(*args)
    except Exception as exc:
        report(what, exc)
