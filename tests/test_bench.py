"""Smoke test of the benchmark suite: it runs, its figures are sane, and it
leaves no process behind.  No timing is asserted: speed is the benchmark's
business, not the test suite's."""
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

pytestmark = [
    pytest.mark.skipif(not RUNNER.exists(), reason="no benchmarks/ beside the tests"),
    pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                       reason="the benchmarks need a C compiler"),
]


def load_runner():
    spec = importlib.util.spec_from_file_location("ngi_bench_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def children():
    """Processes whose parent is this one (running or not yet reaped)."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                mine.append(int(entry.name))
    return set(mine)


def test_quick_run_gives_sane_figures_and_ratios(tmp_path, capsys):
    run = load_runner()
    before = children()
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--repeat", "2", "--duration", "0.2",
                       "--servers", "ngi,c", "--scenarios", "pingpong-1x64,udp-64",
                       "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err

    assert children() <= before, "the runner left processes behind"
    report = json.loads(out.read_text())
    assert report["meta"]["repeat"] == 2
    assert [s["name"] for s in report["scenarios"]] == ["pingpong-1x64", "udp-64"]
    assert len(report["runs"]) == 2 * 2 * 2
    assert not [r for r in report["runs"] if "error" in r]
    for scenario in report["scenarios"]:
        for server in ("ngi", "c"):
            figures = scenario["servers"][server]
            assert figures["runs"] == 2
            assert figures["value"] > 0
            assert figures["cpu_per_op_us"] > 0
            assert 0 < figures["p50_us"] <= figures["p99_us"]
        ratio = scenario["ratios"]["ngi"]["c"]
        assert ratio["value"] > 0 and ratio["cpu_per_op_us"] > 0
    assert "pingpong-1x64" in captured.out and "vs C" in captured.out
    assert max(len(line) for line in captured.out.splitlines()) <= 100


def test_unknown_server_is_refused(capsys):
    run = load_runner()
    with pytest.raises(SystemExit):
        run.main(["--servers", "nginx"])
    assert "unknown server" in capsys.readouterr().err


def test_the_arguments_know_the_tls_scenarios(capsys):
    run = load_runner()
    names = ["tls-pingpong-64x1k", "tls-pingpong-1x1k", "tls-handshake", "tls-stream-8"]
    options = run.parse_args(["--scenarios", ",".join(names), "--servers", "ngi,c"])
    assert options.scenario_list == names
    assert all(s.tls for s in run.SCENARIOS if s.name in names)
    assert not any(s.tls for s in run.SCENARIOS if s.name not in names)
    with pytest.raises(SystemExit):
        run.parse_args(["--scenarios", "tls-pingpong-9x9"])
    assert "unknown scenario" in capsys.readouterr().err


# ---- the report: the table and the plot --------------------------------------

def fake_runs(run, servers, repeat=3):
    """Records as run_all makes them, with the widest figures a run may give."""
    runs = []
    for rep in range(repeat):
        for scenario in run.SCENARIOS:
            for k, server in enumerate(servers):
                if not run.serves(server, scenario):
                    continue
                big = 999_999.0 if scenario.mode != "idle" else 12_345.0
                runs.append({
                    "rep": rep, "scenario": scenario.name, "server": server,
                    "value": big / (k + 1) * (1 + rep / 10), "p50_us": 123_456,
                    "p99_us": 999_999, "cpu_per_op_us": 12_345.6 * (k + 1),
                    "server_cpu": 1.0, "client_cpu": 1.0, "server_core": 1.0,
                    "client_core": 1.0, "ops": 1, "seconds": 1.0, "lost": 0,
                    **({"tls": "TLSv1.3 TLS_AES_256_GCM_SHA384"} if scenario.tls else {})})
    return runs


def fake_meta(run):
    return {"date": "2026-12-01 12:00 UTC", "mode": "--quick", "repeat": 3,
            "duration": 0.5, "pinning": "server on CPU 0, client on CPU 1",
            "load_average": [12.3, 45.6], "servers": list(run.ALL_SERVERS),
            "unavailable": {"tls-stream-8": "OpenSSL's headers (openssl/ssl.h) were not "
                            "found: install libssl-dev " + "and so on " * 10}}


def test_the_table_fits_100_columns_and_says_which_way_is_better():
    run = load_runner()
    servers = list(run.ALL_SERVERS)
    runs = fake_runs(run, servers)
    summary = run.summarise(run.SCENARIOS, servers, runs)
    costs = run.tls_costs(servers, runs)
    writes = run.write_costs(servers, runs)
    text = run.table(summary, fake_meta(run), costs, writes)
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > 100]
    assert not too_long, too_long
    assert "2026-12-01 12:00 UTC, --quick" in lines[0]
    # Every scenario's block says its unit and which way its value is better.
    for scenario in run.SCENARIOS:
        [title] = [line for line in lines if line.startswith(scenario.name + ":")]
        assert scenario.unit in title
        assert ("lower is better" if scenario.mode == "idle" else "higher is better") in title
    # The ratio columns (and the vs streams, TLS/plaintext and three
    # writes/one write ones): which way is better.
    main, *small = [line.split() for line in lines if line.split()[:1] == ["better:"]]
    assert main == ["better:"] + ["higher", "lower"] * len(run.REFERENCES)
    assert small == [["better:", "higher", "lower"]] * 3
    # Ratios pair by pair: ngi is 1.0, asyncio half of ngi, streams a third...
    assert summary[0]["ratios"]["ngi"]["c"]["value"] == pytest.approx(5.0)
    assert summary[0]["ratios"]["ngi"]["c"]["cpu_per_op_us"] == pytest.approx(0.2)
    # ... and TLS/plaintext, for every server that ran both (not asyncio
    # streams, which runs in the framed scenarios only).
    others = [s for s in servers if s != run.STREAMS]
    assert [c["server"] for c in costs] == others
    assert all(c["value"] == pytest.approx(1.0) for c in costs)
    assert "TLS/plaintext" in text and "tls-pingpong-64x1k / pingpong-64x1k" in text
    # Three writes/one write, the same way.
    assert [c["server"] for c in writes] == others
    assert "three writes/one write" in text and "multiwrite-64x1k / pingpong-64x1k" in text
    # asyncio streams: a row in the framed blocks only, and ratios to it.
    for scenario in run.SCENARIOS:
        start = lines.index(next(line for line in lines
                                 if line.startswith(scenario.name + ":")))
        block = []
        for line in lines[start + 1:]:
            if not line.startswith("  "):
                break
            block.append(line.split()[0])
        assert (run.STREAMS in block) == scenario.framed, (scenario.name, block)
    vs_streams = run.streams_ratios(summary)
    assert {(r["scenario"], r["server"]) for r in vs_streams} == {
        (name, server) for name in ("lines-64x16", "sized-64x16") for server in others}
    assert all(r["value"] == pytest.approx(3.0) for r in vs_streams if r["server"] == "ngi")
    assert "vs asyncio streams" in text
    assert "not run: tls-stream-8: OpenSSL's headers" in text
    # The spread over the repetitions is kept for the plot.
    spread = summary[0]["servers"]["ngi"]["spread"]["value"]
    assert spread == [pytest.approx(999_999.0), pytest.approx(999_999.0 * 1.2)]


def test_the_table_shows_a_server_whose_runs_all_failed():
    run = load_runner()
    servers = ["ngi", "c"]
    runs = [dict(r, error="the ngi server exited") if r["server"] == "ngi" else r
            for r in fake_runs(run, servers)]
    scenarios = [s for s in run.SCENARIOS if s.name == "tls-handshake"]
    meta = dict(fake_meta(run), servers=servers, unavailable={})
    lines = run.table(run.summarise(scenarios, servers, runs), meta).splitlines()
    start = lines.index(next(line for line in lines if line.startswith("tls-handshake:")))
    assert lines[start + 1].split() == ["ngi", "failed"]
    assert lines[start + 2].split()[0] == "c"
    # Only the references that ran have ratio columns.
    assert lines[3].split() == ["vs", "C"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="the plot needs matplotlib")
def test_the_plot_has_a_title_with_date_and_mode_and_error_bars():
    run = load_runner()
    servers = ["ngi", "c"]
    scenarios = [s for s in run.SCENARIOS if s.name in ("pingpong-64x1k", "tls-handshake")]
    summary = run.summarise(scenarios, servers, fake_runs(run, servers))
    fig = run.figure(summary, fake_meta(run))
    try:
        title = fig._suptitle.get_text()
        assert "2026-12-01 12:00 UTC" in title and "--quick" in title
        axes = [ax for ax in fig.axes if ax.containers]
        assert len(axes) == 2 * len(scenarios)
        from matplotlib.container import ErrorbarContainer
        # pingpong-64x1k's values: ngi's error bar spans its lowest to
        # highest repetition.
        [errorbars] = [c for c in axes[0].containers if isinstance(c, ErrorbarContainer)]
        segments = errorbars.lines[2][0].get_segments()
        low, high = sorted(segments[0][:, 1])
        assert (low, high) == (pytest.approx(999_999.0), pytest.approx(999_999.0 * 1.2))
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


# ---- TLS ------------------------------------------------------------------------

def test_tls_scenarios_without_openssl_headers_are_reported_not_a_crash(
        tmp_path, capsys, monkeypatch):
    run = load_runner()
    compile_c = run.compile_c

    def no_openssl(name, source=None, flags=(), libs=()):
        if "-lssl" in libs:
            return None, "x.c:1:10: fatal error: openssl/ssl.h: No such file or directory"
        return compile_c(name, source, flags, libs)

    monkeypatch.setattr(run, "compile_c", no_openssl)
    out = tmp_path / "bench.json"
    status = run.main(["--repeat", "1", "--duration", "0.2", "--servers", "c",
                       "--scenarios", "pingpong-1x64,tls-pingpong-64x1k", "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "TLS scenarios are unavailable" in captured.err and "libssl-dev" in captured.err
    report = json.loads(out.read_text())
    assert [s["name"] for s in report["scenarios"]] == ["pingpong-1x64"]
    assert "libssl-dev" in report["meta"]["unavailable"]["tls-pingpong-64x1k"]
    assert "not run: tls-pingpong-64x1k" in captured.out
    # Only TLS asked for: nothing to run, said so.
    assert run.main(["--servers", "c", "--scenarios", "tls-handshake"]) == 2
    assert "unavailable" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The TLS tools and a certificate, or a skip saying what is missing."""
    run = load_runner()
    try:
        tools = run.build_tls()
        tools["certificate"] = run.make_certificate(tmp_path_factory.mktemp("tls"))
    except run.Unavailable as e:
        pytest.skip(f"the TLS benchmarks cannot be built here: {e}")
    return run, tools


def start_c_tls_server(run, tools, procs):
    proc = procs.start(run.server_command("c", tools, tls=True), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE)
    ready = run.Lines(proc, "the C TLS server").next(timeout=10).split()
    assert ready[0] == "ready" and ready[2] == "0"
    return int(ready[1])


def loadgen(run, tools, *args, timeout=20):
    """Run the TLS load generator; (exit status, its final JSON line)."""
    done = subprocess.run([str(tools["loadgen_tls"]), *map(str, args)], timeout=timeout,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == {"phase": "measuring"}, done.stderr
    return done.returncode, json.loads(lines[-1])


def test_tls_pingpong_against_the_c_tls_server_checks_every_byte(tls):
    run, tools = tls
    procs = run.Processes()
    try:
        port = start_c_tls_server(run, tools, procs)
        status, result = loadgen(run, tools, "tls-pingpong", "127.0.0.1", port, 4, 1024, 0.3)
        assert status == 0 and result["errors"] == 0, result
        assert result["ops"] > 0 and result["bytes"] == result["ops"] * 1024
        assert result["tls"].startswith(("TLSv1.3 ", "TLSv1.2 ")), result["tls"]
        status, result = loadgen(run, tools, "tls-stream", "127.0.0.1", port, 2, 0.3)
        assert status == 0 and result["errors"] == 0 and result["bytes"] > 1024, result
    finally:
        procs.stop_all()


class TLSServer:
    """A TLS server on a thread, one connection at a time: it counts the
    handshakes and the resumed ones, and echoes (flipping a bit of the
    first byte if told to)."""

    def __init__(self, cert, key, corrupt=False):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.corrupt = corrupt
        self.handshakes = self.resumed = 0
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        deadline = time.monotonic() + 30
        while not self.stopping and time.monotonic() < deadline:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            raw.settimeout(2)
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self.handshakes += 1
                    self.resumed += conn.session_reused
                    flip = self.corrupt
                    while data := conn.recv(65536):
                        if flip:
                            data, flip = bytes([data[0] ^ 1]) + data[1:], False
                        conn.sendall(data)
            except OSError:
                pass  # the client went: the next one

    def close(self):
        self.stopping = True
        self.thread.join(timeout=10)
        self.sock.close()


def test_tls_handshake_counts_full_handshakes_none_resumed(tls):
    run, tools = tls
    server = TLSServer(*tools["certificate"])
    try:
        status, result = loadgen(run, tools, "tls-handshake", "127.0.0.1", server.port, 1, 0.3)
    finally:
        server.close()
    assert status == 0 and result["errors"] == 0, result
    assert result["ops"] >= 5
    # Each op was a handshake of its own (the warm-up's too), and none resumed.
    assert server.handshakes >= result["ops"]
    assert server.resumed == 0


def test_tls_pingpong_notices_a_wrong_byte(tls):
    run, tools = tls
    server = TLSServer(*tools["certificate"], corrupt=True)
    try:
        status, result = loadgen(run, tools, "tls-pingpong", "127.0.0.1", server.port,
                                 1, 64, 0.2)
    finally:
        server.close()
    assert status == 1 and result["errors"] == 1, result


def test_quick_tls_run_gives_ratios_to_c_and_tls_over_plaintext(tls, tmp_path, capsys):
    run, _ = tls
    before = children()
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--repeat", "1", "--duration", "0.2",
                       "--servers", "ngi,asyncio,c",
                       "--scenarios", "pingpong-64x1k,tls-pingpong-64x1k,tls-handshake",
                       "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert children() <= before, "the runner left processes behind"
    report = json.loads(out.read_text())
    assert not [r for r in report["runs"] if "error" in r]
    for entry in report["scenarios"]:
        assert entry["ratios"]["ngi"]["c"]["value"] > 0
        assert entry["ratios"]["asyncio"]["c"]["value"] > 0
        for server in ("ngi", "asyncio", "c"):
            assert entry["servers"][server]["value"] > 0
            if entry["tls"]:
                assert entry["servers"][server]["tls"].startswith("TLSv1.")
    costs = {c["server"]: c for c in report["tls_vs_plaintext"]}
    assert set(costs) == {"ngi", "asyncio", "c"}
    assert all(0 < c["value"] and 0 < c["cpu_per_op_us"] for c in costs.values())
    assert "TLS/plaintext" in captured.out
    assert max(len(line) for line in captured.out.splitlines()) <= 100


# ---- framed scenarios: lines, sized, multiwrite ------------------------------

def run_loadgen(binary, *args, timeout=20):
    """Run a load generator; (exit status, its final JSON line)."""
    done = subprocess.run([str(binary), *map(str, args)], timeout=timeout,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = done.stdout.splitlines()
    assert lines and json.loads(lines[0]) == {"phase": "measuring"}, done.stderr
    return done.returncode, json.loads(lines[-1])


class RecordServer:
    """A server on threads that cuts the load generator's records as
    benchmarks/README.md says they are (lines: 64 bytes, the last a b"\\n" and
    no other; sized: 64 as 4 bytes big-endian, then 64 bytes), checks each,
    and echoes each with a send of its own; told to, it flips a bit of one
    record's payload."""

    def __init__(self, protocol, corrupt=False):
        self.protocol = protocol
        self.corrupt = corrupt
        self.lock = threading.Lock()
        self.records = 0
        self.bad = []
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = [threading.Thread(target=self.serve, daemon=True)]
        self.threads[0].start()

    def serve(self):
        deadline = time.monotonic() + 30
        while not self.stopping and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self.echo, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def cut(self, buffer):
        """(the first whole record or None, the rest)."""
        if self.protocol == "lines":
            end = buffer.find(b"\n") + 1
        else:
            end = 4 + int.from_bytes(buffer[:4], "big") if len(buffer) >= 4 else 0
        if end == 0 or end > len(buffer):
            return None, buffer
        return buffer[:end], buffer[end:]

    def valid(self, record):
        if self.protocol == "lines":
            return len(record) == 64 and record.count(b"\n") == 1
        return len(record) == 68 and record[:4] == (64).to_bytes(4, "big")

    def echo(self, conn):
        conn.settimeout(5)
        buffer = b""
        with conn:
            try:
                while data := conn.recv(65536):
                    buffer += data
                    record, buffer = self.cut(buffer)
                    while record is not None:
                        with self.lock:
                            self.records += 1
                            if not self.valid(record):
                                self.bad.append(record)
                            if self.corrupt and self.records == 3:
                                record = record[:10] + bytes([record[10] ^ 1]) + record[11:]
                        conn.sendall(record)
                        record, buffer = self.cut(buffer)
            except OSError:
                pass  # the load generator went

    def close(self):
        self.stopping = True
        self.sock.close()
        for thread in self.threads:
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def plain_loadgen():
    return load_runner().build("loadgen")


@pytest.mark.parametrize("protocol", ["lines", "sized"])
def test_framed_modes_send_records_as_documented_and_count_them(plain_loadgen, protocol):
    server = RecordServer(protocol)
    try:
        status, result = run_loadgen(plain_loadgen, protocol, "127.0.0.1", server.port,
                                     2, 16, 0.3)
    finally:
        server.close()
    assert status == 0 and result["errors"] == 0, result
    assert not server.bad, server.bad[:3]
    # ops are records, whole batches of 16; bytes are what was echoed.
    assert result["ops"] > 0 and result["ops"] % 16 == 0, result
    assert result["bytes"] == result["ops"] * (64 if protocol == "lines" else 68)
    assert server.records >= result["ops"]


@pytest.mark.parametrize("protocol", ["lines", "sized"])
def test_framed_modes_notice_a_wrong_byte(plain_loadgen, protocol):
    server = RecordServer(protocol, corrupt=True)
    try:
        status, result = run_loadgen(plain_loadgen, protocol, "127.0.0.1", server.port,
                                     2, 16, 0.3)
    finally:
        server.close()
    assert not server.bad, server.bad[:3]
    assert status == 1 and result["errors"] == 1, result  # one connection dropped
    assert result["ops"] > 0  # the other went on


def test_framed_modes_refuse_a_bad_record_count(plain_loadgen):
    for records in (0, 1025):
        done = subprocess.run([str(plain_loadgen), "lines", "127.0.0.1", "9", "1",
                               str(records), "0.1"], capture_output=True, text=True,
                              timeout=10)
        assert done.returncode == 2 and "RECORDS must be 1 .. 1024" in done.stderr


def test_the_arguments_know_the_framed_scenarios_and_asyncio_streams(capsys):
    run = load_runner()
    names = ["lines-64x16", "sized-64x16", "multiwrite-64x1k"]
    options = run.parse_args(["--scenarios", ",".join(names),
                              "--servers", "ngi,asyncio-streams,uvloop,c"])
    assert options.scenario_list == names
    assert options.server_list == ["ngi", "asyncio-streams", "uvloop", "c"]
    scenarios = {s.name: s for s in run.SCENARIOS if s.name in names}
    assert [(s.mode, s.count, s.size, s.protocol, s.unit) for s in scenarios.values()] == [
        ("lines", 64, 16, "lines", "rec/s"), ("sized", 64, 16, "sized", "rec/s"),
        ("pingpong", 64, 1024, "multiwrite", "req/s")]
    # asyncio streams runs in the framed scenarios only.
    assert [s.name for s in run.SCENARIOS if run.serves(run.STREAMS, s)] == names[:2]
    assert all(run.serves(server, s) for server in ("ngi", "asyncio", "uvloop", "c")
               for s in run.SCENARIOS)
    assert run.main(["--servers", "asyncio-streams", "--scenarios", "pingpong-1x64"]) == 2
    assert "nothing to run" in capsys.readouterr().err
    # The Python servers are told the protocol; the C server is the echo server.
    tools = {"echo_server": Path("/x/echo_server")}
    assert run.server_command("uvloop", tools, protocol="sized")[-3:] == [
        "uvloop", "--protocol", "sized"]
    assert run.server_command("c", tools, protocol="lines") == ["/x/echo_server"]
    # servers.py refuses asyncio streams where it has no server.
    done = subprocess.run([sys.executable, str(RUNNER.parent / "servers.py"),
                           "asyncio-streams", "--protocol", "multiwrite"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "usage" in done.stderr


SERVER_PROTOCOLS = [(kind, protocol) for kind in ("ngi", "ngi-aio", "asyncio", "uvloop")
                    for protocol in ("lines", "sized", "multiwrite")]
SERVER_PROTOCOLS += [("asyncio-streams", "lines"), ("asyncio-streams", "sized")]


@pytest.mark.parametrize("kind,protocol", SERVER_PROTOCOLS)
def test_every_python_server_speaks_its_protocol(plain_loadgen, kind, protocol):
    if kind in ("uvloop", "ngi-aio") and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    run = load_runner()
    procs = run.Processes()
    try:
        proc = procs.start(run.server_command(kind, {}, protocol=protocol),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        ready = run.Lines(proc, f"the {kind} server").next(timeout=30).split()
        assert ready[0] == "ready" and ready[2] == "0", ready
        port = int(ready[1])
        run.warm_up(port, protocol=protocol)  # one short record, or 1 byte
        if protocol == "multiwrite":
            args = ("pingpong", "127.0.0.1", port, 4, 1024, 0.2)
        else:
            args = (protocol, "127.0.0.1", port, 4, 16, 0.2)
        status, result = run_loadgen(plain_loadgen, *args)
        assert proc.poll() is None, "the server died"
    finally:
        procs.stop_all()
    assert status == 0 and result["errors"] == 0, result
    assert result["ops"] > 0


def test_quick_framed_run_gives_records_ratios_and_three_writes_over_one(tmp_path, capsys):
    run = load_runner()
    before = children()
    out = tmp_path / "bench.json"
    names = ["pingpong-64x1k", "lines-64x16", "sized-64x16", "multiwrite-64x1k"]
    status = run.main(["--quick", "--repeat", "1", "--duration", "0.2",
                       "--servers", "ngi,c", "--scenarios", ",".join(names),
                       "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert children() <= before, "the runner left processes behind"
    report = json.loads(out.read_text())
    assert [s["name"] for s in report["scenarios"]] == names
    assert not [r for r in report["runs"] if "error" in r]
    for r in report["runs"]:
        if r["scenario"] in ("lines-64x16", "sized-64x16"):
            assert r["ops"] % 16 == 0  # records, in whole batches
            assert r["value"] == pytest.approx(r["ops"] / r["seconds"])
    for entry in report["scenarios"]:
        for server in ("ngi", "c"):
            figures = entry["servers"][server]
            assert figures["value"] > 0 and figures["cpu_per_op_us"] > 0
        assert entry["ratios"]["ngi"]["c"]["value"] > 0
    writes = {c["server"]: c for c in report["multiwrite_vs_pingpong"]}
    assert set(writes) == {"ngi", "c"}
    assert all(c["value"] > 0 and c["cpu_per_op_us"] > 0 for c in writes.values())
    text = captured.out
    assert "rec/s" in text and "three writes/one write" in text
    assert "vs asyncio streams:" not in text  # it did not run
    assert max(len(line) for line in text.splitlines()) <= 100


def test_ngi_aio_echoes_tcp_and_udp_and_is_wired_into_the_runner(plain_loadgen):
    """ngi-aio (ngi's handler on ngi.aio over uvloop) in the runner's
    arguments, with ratios to uvloop; its echo checked byte for byte by the
    load generator, over TCP and UDP."""
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    run = load_runner()
    options = run.parse_args(["--servers", "ngi-aio,uvloop",
                              "--scenarios", "pingpong-64x1k"])
    assert options.server_list == ["ngi-aio", "uvloop"]
    assert "ngi-aio" not in run.parse_args([]).server_list  # only when asked for
    procs = run.Processes()
    try:
        proc = procs.start(run.server_command("ngi-aio", {}),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        ready = run.Lines(proc, "the ngi-aio server").next(timeout=30).split()
        assert ready[0] == "ready", ready
        port, udp_port = int(ready[1]), int(ready[2])
        run.warm_up(port)
        status, result = run_loadgen(plain_loadgen, "pingpong", "127.0.0.1", port,
                                     4, 1024, 0.2)
        assert status == 0 and result["errors"] == 0, result
        assert result["ops"] > 0 and result["bytes"] == result["ops"] * 1024
        status, result = run_loadgen(plain_loadgen, "udp", "127.0.0.1", udp_port,
                                     4, 64, 0.2)
        assert status == 0 and result["ops"] > 0, result
        assert proc.poll() is None, "the server died"
    finally:
        procs.stop_all()
