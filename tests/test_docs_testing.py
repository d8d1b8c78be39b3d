"""The testing guide (docs/testing.md) shows what it promises, and its
conformance-suite examples work as pytest test classes.

tests/test_docs.py runs every Python block of every page, this one
included; executing a block that defines a test class only defines it, so
here the guide's suite examples are collected and run by pytest itself.
"""
from __future__ import annotations

import pathlib
import re

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "testing.md"
PYTHON = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks():
    return PYTHON.findall(GUIDE.read_text())


def test_the_guide_runs_examples_of_fragmentation_time_and_faults():
    code = "\n".join(python_blocks())
    for shown in ["chunk_size=1", 'chunk_size="random"', "deferred=True",
                  ".pump()", ".run_until_idle()", ".advance(", "call_later(",
                  ".refuse(", ".restore(", ".reset()", "pause_reading()",
                  "handle_pause_writing", "ConformanceTests"]:
        assert shown in code, f"no runnable example uses {shown}"


def test_the_guides_conformance_examples_run_under_pytest(pytester):
    suites = [block for block in python_blocks()
              if "(ConformanceTests):" in block]
    assert len(suites) == 2
    pytester.makepyfile(test_guide="\n\n".join(suites))
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:cacheprovider",
        "-k", "echo_round_trip or deadline_order or pause_reading_holds")
    result.assert_outcomes(passed=6)
