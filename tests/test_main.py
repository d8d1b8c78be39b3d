"""The ``ngi`` command: its subcommands, --help, --version and errors."""
import pathlib
import signal
import subprocess
import sys

import pytest

import ngi
from ngi.__main__ import main
from ngi.demo import run_demo
from test_serve import Served, ask

COMMANDS = ["echo", "serve", "bench", "demo"]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ngi", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


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
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_the_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "ngi"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    result = subprocess.run([str(script), "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == f"ngi {ngi.__version__}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_version_everywhere(command, tmp_path):
    result = run(*([command] if command else []), "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ngi {ngi.__version__}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command, tmp_path):
    result = run(*([command] if command else []), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: ngi{' ' + command if command else ''}")


@pytest.mark.parametrize("args, message", [
    (["nonsense"], "ngi: error: argument COMMAND: invalid choice: 'nonsense'"),
    (["--bogus"], "ngi: error: unrecognized arguments: --bogus"),
    (["serve"], "ngi serve: error: the following arguments are required: "
                "MODULE:SERVER, --bind"),
    (["serve", "examples.echo:server"], "ngi serve: error: the following "
                                        "arguments are required: --bind"),
    (["serve", "examples.echo:server", "--bind", "nowhere"],
     "ngi serve: error: invalid address 'nowhere'"),
    (["serve", "examples.echo:server", "--bind", ":1", "--workers", "two"],
     "ngi serve: error: argument --workers: invalid int value: 'two'"),
    (["serve", "examples.echo:server", "--bind", ":1", "--workers", "0"],
     "ngi serve: error: --workers must be at least 1"),
    (["serve", "examples.echo:server", "--bind", ":1", "--grace", "-1"],
     "ngi serve: error: --grace must not be negative"),
    (["serve", "examples.echo:server", "--bind", ":1", "--log-level", "loud"],
     "ngi serve: error: argument --log-level: invalid choice: 'loud'"),
    (["serve", "no_such_module_here:x", "--bind", ":1"],
     "ngi serve: error: cannot import 'no_such_module_here'"),
    (["echo", "--bind", "[::1]"], "ngi echo: error: invalid address '[::1]'"),
    (["echo", "--keyfile", "key.pem"],
     "ngi echo: error: --keyfile and --cafile need --certfile"),
    (["echo", "--certfile", "missing.pem"],
     "ngi echo: error: cannot load the certificate from missing.pem: "),
    (["serve", "examples.echo:server", "--bind", ":1", "--certfile",
      "missing.pem", "--keyfile", "key.pem"],
     "ngi serve: error: cannot load the certificate from missing.pem and "
     "key.pem: "),
    (["echo", "extra"], "ngi: error: unrecognized arguments: extra"),
    (["demo", "--fast"], "ngi: error: unrecognized arguments: --fast"),
])
def test_argument_errors_are_one_line_and_exit_2(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


def test_echo(tmp_path):
    with Served(["echo", "--bind", "127.0.0.1:0"], cwd=tmp_path) as served:
        assert ask(served.address, b"hello\r\n") == b"hello\r\n"
        assert served.stop(signal.SIGINT) == 0


# -- bench ------------------------------------------------------------------

FAKE_RUN = '''
def main(argv):
    if argv == ["--help"]:
        print("usage: run.py [--quick]")
        raise SystemExit(0)
    print("bench got", argv)
    return 7
'''


def test_bench_runs_benchmarks_run_py_from_the_current_directory(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "run.py").write_text(FAKE_RUN)
    result = run("bench", "--quick", "x", cwd=tmp_path)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "bench got ['--quick', 'x']\n"
    result = run("bench", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: ngi bench" in result.stdout
    assert "usage: run.py [--quick]" in result.stdout


def test_bench_without_benchmarks_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ngi.__main__.find_benchmarks", lambda: None)
    assert main(["bench", "--quick"]) == 2
    assert main(["bench", "--help"]) == 0


def test_bench_error_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ngi.__main__.find_benchmarks", lambda: None)
    main(["bench"])
    err = capsys.readouterr().err
    assert err == ("ngi bench: error: benchmarks/run.py not found: run ngi "
                   "bench from the root of an ngi source checkout\n")


def test_every_command_raises_the_open_file_limit():
    script = ("import resource, sys\n"
              "from ngi.__main__ import main\n"
              "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
              "main(['demo'])\n"
              "print('limit', resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip().endswith("limit True")
