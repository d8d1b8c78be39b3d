"""Every Python snippet in docs/ runs, page by page, as written.

In a page, ```python blocks are executed and ```pycon blocks are run as
doctests (their output is checked), in order, in one namespace, in a
process of their own started from the repository root.  Fragments that
are not meant to run use another fence (```sh, ```text, ```ini).  The
HTML build itself (with warnings as errors) is run by .ci/run.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

FENCE = re.compile(r"^```(python|pycon)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)

RUNNER = r'''
import doctest, json, sys, traceback
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__docs__"}
parser = doctest.DocTestParser()
runner = doctest.DocTestRunner(
    optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
for kind, line, source in blocks:
    where = f"{sys.argv[1]}:{line}"
    if kind == "python":
        try:
            exec(compile(source, where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the python block at {where}")
            sys.exit(1)
    else:
        test = parser.get_doctest(source, namespace, where, sys.argv[1], line)
        if runner.run(test, clear_globs=False).failed:
            print(f"FAILED: the pycon block at {where}")
            sys.exit(1)
print("ok", len(blocks))
'''


def blocks(page):
    text = page.read_text()
    return [(m.group(1), text.count("\n", 0, m.start()) + 2, m.group(2))
            for m in FENCE.finditer(text)]


def test_the_docs_have_runnable_snippets():
    assert sum(len(blocks(page)) for page in PAGES) >= 15


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)],
                         ids=lambda p: p.name)
def test_snippets_run(page):
    import json
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(page.relative_to(ROOT))],
        input=json.dumps(blocks(page)), capture_output=True, text=True,
        cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(f"ok {len(blocks(page))}")
