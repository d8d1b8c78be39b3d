"""The README's docs command works with the docs extra alone: the HTML
build (warnings as errors) needs no pytest, although the API pages
document ngi.testing.conformance, a pytest suite.

Skipped where the docs extra is not installed (``pip install '.[docs]'``).
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Sphinx, in a process where pytest cannot be imported (as in a fresh
# environment with only the docs extra).
WITHOUT_PYTEST = r'''
import sys

class NoPytest:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoPytest())
from sphinx.cmd.build import main
sys.exit(main(sys.argv[1:]))
'''


def test_the_readme_docs_command_needs_no_pytest(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[docs]' && python -m sphinx -W -b html docs" in readme
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTEST, "-W", "-q", "-b", "html",
         "docs", str(tmp_path / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    assert "ConformanceTests" in api  # documented, not skipped
