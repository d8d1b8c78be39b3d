"""The ``ngi`` command and its demo."""
import subprocess
import sys

from ngi.__main__ import main
from ngi.demo import run_demo


def test_demo_counts_words():
    shown = []
    assert run_demo(shown.append) == [2, 5, 0, 1]
    assert shown[0] == "client -> b'hello world'"
    assert shown[1] == "client <- 2 words"
    assert shown[-1] == "done: [2, 5, 0, 1]"


def test_python_dash_m_ngi_demo_runs_the_demo():
    out = subprocess.run([sys.executable, "-m", "ngi", "demo"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "client <- 5 words" in out
    assert out.strip().endswith("done: [2, 5, 0, 1]")


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
