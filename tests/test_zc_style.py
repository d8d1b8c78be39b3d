"""A zc.ngi-style doctest suite (zc_style.txt, written with zc.ngi's names)
runs on ngi after the renames of docs/porting.md alone."""
from __future__ import annotations

import doctest
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
SUITE = HERE / "zc_style.txt"
PORTING = HERE.parent / "docs" / "porting.md"


def porting_renames():
    """The substitutions of the porting guide's ``sed`` command."""
    command = re.search(r"^sed -i '([^']*)'", PORTING.read_text(), re.M)
    assert command, "docs/porting.md has no sed command"
    renames = []
    for expression in command.group(1).split(";"):
        _, pattern, replacement, flags = expression.strip().split("/")
        renames.append((re.compile(pattern), replacement.replace("\\", ""),
                        0 if "g" in flags else 1))
    return renames


def rename(text):
    lines = []
    for line in text.splitlines(keepends=True):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        for pattern, replacement, count in porting_renames():
            body = pattern.sub(replacement, body, count=count)
        lines.append(body + end)
    return "".join(lines)


def test_the_suite_is_written_for_zc_ngi():
    text = SUITE.read_text()
    assert "zc.ngi.testing" in text and "zc.ngi.async" in text
    code = [line for line in rename(text).splitlines()
            if line.lstrip().startswith((">>>", "..."))]
    assert not [line for line in code if "zc.ngi" in line]
    assert any("ngi.net.listener" in line for line in code)


def test_the_zc_style_suite_runs_after_the_renames():
    text = rename(SUITE.read_text())
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"__name__": "zc_style"}, SUITE.name,
                              str(SUITE), 0)
    assert len(test.examples) > 60
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
