"""ngi's benchmark suite: echo servers under a C load generator.

    python benchmarks/run.py [--quick] [--servers ngi,asyncio,asyncio-streams,uvloop,c,ngi-aio]
                             [--scenarios NAME,...] [--repeat N] [--duration S]
                             [--json FILE|-] [--plot FILE.png] [--markdown FILE.md]

or ``python -m ngi bench`` with the same options.

Echo servers (ngi.net, asyncio, uvloop, and C: the floor) each run in a
process of their own, on one CPU, and the client (loadgen.c, compiled here
with the system cc) on another.  Within a repetition each scenario runs
every server in turn, the order rotating between repetitions.  A figure is
the median over the repetitions; ratios to uvloop and to the C server are
taken pair by pair within a repetition, then their median.  The server's
CPU time per operation is reported beside the throughput because, on 2
cores, a saturated client can hide a faster server.  The tls- scenarios run
the same servers over TLS (OpenSSL's headers needed: libssl-dev), against a
C TLS echo server; ngi's and C's TLS/plaintext ratios follow the table.
The framed scenarios (lines-, sized-) echo records through each library's
framing, asyncio streams (asyncio-streams) too, with ratios to it after the
table; multiwrite- answers each request with three writes.  ngi-aio, ngi's
handlers on ngi.aio over uvloop, runs when asked for (--servers
ngi-aio,uvloop: its CPU per request over uvloop's).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
STREAMS = "asyncio-streams"  # asyncio streams: only for the framed scenarios
AIO = "ngi-aio"  # ngi handlers on ngi.aio over uvloop: only when asked for
ALL_SERVERS = ("ngi", "asyncio", STREAMS, "uvloop", "c", AIO)
DEFAULT_SERVERS = ("ngi", "asyncio", STREAMS, "uvloop", "c")
REFERENCES = ("uvloop", "c")  # ratios are given against these (and STREAMS when framed)
HOLD = 60  # longest an idle run holds its connections (we end it sooner)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: str         # loadgen's mode
    count: int        # connections, flows or concurrent connects
    size: int = 0     # message size, for pingpong and udp; records, for lines and sized
    unit: str = "req/s"
    op: str = "req"   # what "CPU per op" is per
    protocol: str = "echo"  # what the Python servers speak (servers.py --protocol)

    @property
    def lower_is_better(self):
        return self.mode == "idle"

    @property
    def tls(self):
        return self.mode.startswith("tls-")

    @property
    def sized(self):
        """The load generator takes a message size (or a number of records)."""
        return self.mode in ("pingpong", "udp", "tls-pingpong", "lines", "sized")

    @property
    def framed(self):
        """Records through each library's framing; asyncio streams take part."""
        return self.protocol in ("lines", "sized")


def serves(server, scenario):
    """Whether `server` runs in `scenario`: asyncio streams only in the framed ones."""
    return server != STREAMS or scenario.framed


SCENARIOS = [
    Scenario("pingpong-1x64", "ping-pong 1 conn x 64 B", "pingpong", 1, 64),
    Scenario("pingpong-64x1k", "ping-pong 64 conns x 1 KiB", "pingpong", 64, 1024),
    Scenario("pingpong-64x64k", "ping-pong 64 conns x 64 KiB", "pingpong", 64, 65536),
    Scenario("pingpong-1024x1k", "ping-pong 1,024 conns x 1 KiB", "pingpong", 1024, 1024),
    Scenario("stream-8", "stream 8 conns", "stream", 8, unit="MiB/s", op="MiB"),
    Scenario("connect", "connect, 1-byte echo, close (16 at once)", "connect", 16,
             unit="conn/s", op="conn"),
    Scenario("idle-10k", "RSS per idle connection, 10,000 conns", "idle", 10000,
             unit="B/conn", op="conn"),
    Scenario("udp-64", "UDP 64 B request/response (8 in flight)", "udp", 8, 64),
    Scenario("lines-64x16", "64 conns, each sending 16 lines of 64 B at once", "lines", 64, 16,
             unit="rec/s", op="rec", protocol="lines"),
    Scenario("sized-64x16", "64 conns, each sending 16 records of 4+64 B at once", "sized",
             64, 16, unit="rec/s", op="rec", protocol="sized"),
    Scenario("multiwrite-64x1k", "ping-pong 64 conns x 1 KiB, each answer in 3 writes",
             "pingpong", 64, 1024, protocol="multiwrite"),
    Scenario("tls-pingpong-64x1k", "TLS ping-pong 64 conns x 1 KiB", "tls-pingpong", 64, 1024),
    Scenario("tls-pingpong-1x1k", "TLS ping-pong 1 conn x 1 KiB", "tls-pingpong", 1, 1024),
    Scenario("tls-handshake", "TLS full handshakes (RSA 2048, 1-byte echo, 16 at once)",
             "tls-handshake", 16, unit="hs/s", op="hs"),
    Scenario("tls-stream-8", "TLS stream 8 conns", "tls-stream", 8, unit="MiB/s", op="MiB"),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}
# TLS/plaintext ratios: the TLS scenario's throughput over the plaintext one's.
TLS_PAIRS = [("tls-pingpong-64x1k", "pingpong-64x1k")]
# Three writes/one write: multiwrite's throughput over the one-write ping-pong's.
WRITE_PAIRS = [("multiwrite-64x1k", "pingpong-64x1k")]


class BenchError(Exception):
    """One run failed; the others go on."""


class Unavailable(Exception):
    """Some scenarios cannot run here (say, no OpenSSL headers); the others go on."""


# ---- building the C programs ------------------------------------------------

def build_dir():
    """benchmarks/build if we may write there, else a per-user temp dir."""
    here = HERE / "build"
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    there = Path(tempfile.gettempdir()) / f"ngi-bench-{os.getuid()}"
    there.mkdir(exist_ok=True)
    return there


TLS_FLAGS = ("-DNGI_TLS",)
TLS_LIBS = ("-lssl", "-lcrypto")
NO_OPENSSL = ("OpenSSL's headers (openssl/ssl.h) were not found: install libssl-dev "
              "(Debian, Ubuntu) or openssl-devel (Fedora), or set CC to a compiler "
              "that finds them")


def compile_c(name, source=None, flags=(), libs=()):
    """Compile benchmarks/SOURCE.c (default NAME.c) to NAME-DIGEST, once per
    source, compiler and flags; return (binary, None) or (None, errors)."""
    source = HERE / f"{source or name}.c"
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"ngi bench: a C compiler is needed ({cc!r} not found; set CC)")
    argv_tail = [*flags, str(source), *libs]
    digest = hashlib.sha1(source.read_bytes() + " ".join([cc, *argv_tail]).encode()
                          ).hexdigest()[:12]
    binary = build_dir() / f"{name}-{digest}"
    if not binary.exists():
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        done = subprocess.run([cc, "-O2", "-o", str(partial), *argv_tail],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            return None, done.stderr
        os.replace(partial, binary)
    return binary, None


def build(name):
    """Compile benchmarks/NAME.c (no library needed); return the binary."""
    binary, errors = compile_c(name)
    if binary is None:
        raise SystemExit(f"ngi bench: compiling {HERE / name}.c failed:\n{errors}")
    return binary


def build_tls():
    """The TLS load generator and C TLS server, linked with OpenSSL.

    Raises Unavailable, saying why, when they cannot be built here."""
    tools = {}
    for name, source in (("loadgen_tls", "loadgen"), ("tls_echo_server", None)):
        binary, errors = compile_c(name, source, TLS_FLAGS if source else (), TLS_LIBS)
        if binary is None:
            if "openssl/" in errors and ("No such file" in errors or "not found" in errors):
                raise Unavailable(NO_OPENSSL)
            if "-lssl" in errors or "-lcrypto" in errors:
                raise Unavailable("OpenSSL's libraries (libssl, libcrypto) were not found: "
                                  "install libssl-dev (Debian, Ubuntu) or openssl-devel "
                                  "(Fedora)")
            raise Unavailable(f"compiling {name} with OpenSSL failed:\n{errors.strip()}")
        tools[name] = binary
    return tools


def make_certificate(directory):
    """A fresh RSA 2048 key and a certificate for 127.0.0.1 (from a throwaway
    CA, made with trustme), as PEM files in `directory`; (cert, key) paths."""
    try:
        import trustme
    except ImportError:
        raise Unavailable("the TLS scenarios make their certificate with trustme: "
                          "pip install 'ngi[bench]'") from None
    if not hasattr(trustme, "KeyType"):
        raise Unavailable("trustme is too old for RSA keys (1.0 or newer needed): "
                          "pip install -U trustme")
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    issued = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    cert.write_bytes(issued.cert_chain_pems[0].bytes())  # the leaf only: as C does
    key.touch(mode=0o600)
    key.write_bytes(issued.private_key_pem.bytes())
    return cert, key


# ---- processes ----------------------------------------------------------------

class Processes:
    """Every child we start, so that all of them die at the end, whatever happens."""

    def __init__(self):
        self.live = []

    def start(self, argv, cpu=None, **popen_args):
        # A session of its own: a Ctrl-C at the terminal reaches only us, and
        # we end the children ourselves.
        env = dict(os.environ, NGI_BENCH_PARENT=str(os.getpid()))
        proc = subprocess.Popen(argv, start_new_session=True, env=env, **popen_args)
        self.live.append(proc)
        if cpu is not None:
            try:
                os.sched_setaffinity(proc.pid, {cpu})
            except OSError:
                pass  # it exited already; the caller will see
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self):
        for proc in list(self.live):
            self.stop(proc)


class Lines:
    """Read a child's stdout line by line, never waiting past a deadline."""

    def __init__(self, proc, what):
        self.proc = proc
        self.what = what
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.what}: no answer in {timeout:.0f} s")
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise BenchError(f"{self.what} exited (status {self.proc.poll()})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def cpu_seconds(pid):
    """CPU time a process has used, all threads, in seconds.

    The process's CPU clock has nanosecond resolution; /proc/PID/stat counts
    in ticks (10 ms), too coarse for short runs, so it is only the fallback.
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)  # Linux MAKE_PROCESS_CPUCLOCK(pid, SCHED)
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")


def core_ticks():
    """(busy, total) jiffies per CPU from /proc/stat: how busy a core was,
    counting the interrupt and softirq time no process is charged for."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(f) for f in fields[:8]]
            ticks[int(name[3:])] = (sum(numbers) - numbers[3] - numbers[4], sum(numbers))
    return ticks


def core_busy(before, after, cpu):
    if cpu is None or cpu not in before or cpu not in after:
        return None
    busy, total = (a - b for a, b in zip(after[cpu], before[cpu]))
    return busy / total if total else None


def raise_descriptor_limit():
    """10,000 idle connections need more descriptors than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---- one run: one server, one scenario ------------------------------------

def server_command(server, tools, tls=False, protocol="echo"):
    """The server's argv; with tls, its TLS echo server (tools["certificate"]).

    The C server is the same echo server whatever the protocol: records
    come back as they were sent, which is what every protocol asks."""
    cert_key = [str(f) for f in tools["certificate"]] if tls else []
    if server == "c":
        return [str(tools["tls_echo_server" if tls else "echo_server"]), *cert_key]
    return [sys.executable, str(HERE / "servers.py"), server,
            *(["--tls", *cert_key] if tls else []),
            *(["--protocol", protocol] if protocol != "echo" else [])]


def client_context():
    """The warm-up's TLS client: a benchmark verifies no certificate."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# What the warm-up sends (and must get back) for each protocol: one record.
WARM_UP = {"echo": b"x", "lines": b"x\n", "sized": b"\0\0\0\1x", "multiwrite": b"x"}


def warm_up(port, tls=False, protocol="echo"):
    """One echo through the server (over TLS, after a handshake), so lazy
    first-use allocations are done before its RSS is taken as the baseline."""
    message = WARM_UP[protocol]
    with socket.create_connection((HOST, port), timeout=10) as raw:
        sock = client_context().wrap_socket(raw) if tls else raw
        sock.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = sock.recv(len(message) - len(got))
            if not chunk:
                break
            got += chunk
        if got != message:
            raise BenchError("the warm-up echo came back wrong")


def run_once(scenario, server, tools, options, procs):
    """Start the server, run the load generator against it, measure, stop."""
    with tempfile.TemporaryFile() as server_log, tempfile.TemporaryFile() as client_log:
        proc = procs.start(server_command(server, tools, scenario.tls, scenario.protocol),
                           cpu=options.server_cpu,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=server_log)
        try:
            return measure(scenario, server, proc, tools, options, procs, client_log)
        except (BenchError, OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise BenchError(" | ".join([str(e), *filter(None, [
                tail("load generator", client_log), tail(f"{server} server", server_log)])]))
        finally:
            procs.stop(proc)


def tail(who, log):
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return f"{who} said: ...{text[-500:]}" if text else ""


def measure(scenario, server, proc, tools, options, procs, client_log):
    ready = Lines(proc, f"the {server} server").next(timeout=30).split()
    if len(ready) != 3 or ready[0] != "ready":
        raise BenchError(f"the {server} server said {' '.join(ready)!r}, not 'ready'")
    tcp_port, udp_port = int(ready[1]), int(ready[2])
    warm_up(tcp_port, scenario.tls, scenario.protocol)
    rss_before = rss_bytes(proc.pid)

    port = udp_port if scenario.mode == "udp" else tcp_port
    count = options.idle_connections if scenario.mode == "idle" else scenario.count
    loadgen = tools["loadgen_tls" if scenario.tls else "loadgen"]
    argv = [str(loadgen), scenario.mode, HOST, str(port), str(count)]
    if scenario.sized:
        argv.append(str(scenario.size))
    argv.append(str(HOLD if scenario.mode == "idle" else options.duration))
    limit = options.duration + (150 if scenario.mode == "idle" else 60)

    client = procs.start(argv, cpu=options.client_cpu, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=client_log)
    try:
        lines = Lines(client, "the load generator")
        if json.loads(lines.next(limit)).get("phase") != "measuring":
            raise BenchError("the load generator did not start measuring")
        cpu_start, cores_start = cpu_seconds(proc.pid), core_ticks()
        result = json.loads(lines.next(limit))
        cpu_used, cores_end = cpu_seconds(proc.pid) - cpu_start, core_ticks()
        rss_after = rss_bytes(proc.pid)
        client.stdin.close()  # idle: let the connections go
        status = client.wait(timeout=30)
    except (subprocess.TimeoutExpired, OSError, ValueError) as e:
        raise BenchError(f"the load generator failed: {e}") from None
    finally:
        procs.stop(client)
    if proc.poll() is not None:
        raise BenchError(f"the {server} server died (status {proc.returncode})")
    if status != 0 or result["errors"]:
        raise BenchError(f"load generator status {status}, {result['errors']} errors "
                         "(wrong bytes or failed connections)")
    record = figures(scenario, result, cpu_used, rss_after - rss_before)
    record["server_rss"] = rss_after
    if "tls" in result:
        record["tls"] = result["tls"]  # the protocol and cipher agreed
    record["server_core"] = core_busy(cores_start, cores_end, options.server_cpu)
    record["client_core"] = core_busy(cores_start, cores_end, options.client_cpu)
    return record


def figures(scenario, result, cpu_used, rss_growth):
    """Turn the load generator's counts into the reported figures."""
    ops, seconds = result["ops"], result["seconds"]
    if ops <= 0:
        raise BenchError("no operation completed")
    if scenario.mode in ("stream", "tls-stream"):
        ops = result["bytes"] / 2**20  # per MiB
    if scenario.mode == "idle":
        value = rss_growth / ops
    else:
        value = ops / seconds
    return {
        "value": value,
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "cpu_per_op_us": cpu_used / ops * 1e6,
        "server_cpu": cpu_used / seconds,      # share of one CPU
        "client_cpu": result["client_cpu"] / seconds,
        "ops": result["ops"],
        "seconds": seconds,
        "lost": result["lost"],
    }


# ---- the whole run ------------------------------------------------------------

def available_servers(wanted):
    servers = []
    for server in wanted:
        if server in ("uvloop", AIO) and importlib.util.find_spec("uvloop") is None:
            print(f"ngi bench: uvloop is not installed (pip install 'ngi[bench]'); "
                  f"skipping {server}", file=sys.stderr)
            continue
        servers.append(server)
    return servers


def run_all(scenarios, servers, tools, options, procs, progress, runs):
    """Every scenario x server x repetition, each run's record added to `runs`."""
    total = options.repeat * sum(serves(v, s) for s in scenarios for v in servers)
    started = time.monotonic()
    for rep in range(options.repeat):
        turn = rep % len(servers)
        order = servers[turn:] + servers[:turn]  # no server always goes first
        for scenario in scenarios:
            for server in order:
                if not serves(server, scenario):
                    continue
                done = len(runs)
                eta = ((time.monotonic() - started) / done * (total - done)) if done else 0
                label = (f"[{done + 1:>3}/{total}] rep {rep + 1}/{options.repeat} "
                         f"{scenario.name:<18} {server:<15}")
                progress(f"{label} ...{f' (about {eta:.0f} s left)' if eta else ''}",
                         final=False)
                record = {"rep": rep, "scenario": scenario.name, "server": server,
                          "started_s": round(time.monotonic() - started, 1)}
                try:
                    record.update(run_once(scenario, server, tools, options, procs))
                    progress(f"{label} {fmt(record['value'])} {scenario.unit}, "
                             f"CPU {fmt(record['cpu_per_op_us'])} us/{scenario.op}")
                except BenchError as e:
                    record["error"] = str(e)
                    progress(f"{label} FAILED: {e}")
                runs.append(record)


FIGURES = ("value", "p50_us", "p99_us", "cpu_per_op_us", "server_cpu", "client_cpu",
           "server_core", "client_core")
RATIOS = ("value", "cpu_per_op_us")  # what ratios are taken of


def pair_ratios(mine, theirs):
    """Medians of mine/theirs over runs of the same repetition, per figure."""
    pairs = [(a, b) for a in mine for b in theirs if a["rep"] == b["rep"]]
    if not pairs:
        return {}
    return {key: statistics.median(a[key] / b[key] for a, b in pairs)
            for key in RATIOS if all(b[key] > 0 for _, b in pairs)}


def summarise(scenarios, servers, runs):
    """Medians per scenario and server (and their spread over the repetitions);
    ratios pair by pair, then medians."""
    out = []
    for scenario in scenarios:
        ok = [r for r in runs if r["scenario"] == scenario.name and "error" not in r]
        per_server = {}
        for server in servers:
            mine = [r for r in ok if r["server"] == server]
            if not mine:
                continue
            entry = {"runs": len(mine), "spread": {}}
            for key in FIGURES:
                values = [r[key] for r in mine if r.get(key) is not None]
                entry[key] = statistics.median(values) if values else None
                if key in RATIOS and values:
                    entry["spread"][key] = [min(values), max(values)]
            agreed = sorted({r["tls"] for r in mine if "tls" in r})
            if agreed:
                entry["tls"] = ", ".join(agreed)
            per_server[server] = entry
        ratios = {}
        refs = REFERENCES + ((STREAMS,) if scenario.framed else ())
        for server in servers:
            for ref in refs:
                if ref == server or ref not in servers:
                    continue
                ratio = pair_ratios([r for r in ok if r["server"] == server],
                                    [r for r in ok if r["server"] == ref])
                if ratio:
                    ratios.setdefault(server, {})[ref] = ratio
        out.append({"name": scenario.name, "title": scenario.title,
                    "unit": scenario.unit, "op": scenario.op, "tls": scenario.tls,
                    "lower_is_better": scenario.lower_is_better,
                    "servers": per_server, "ratios": ratios})
    return out


def same_server_ratios(pairs, servers, runs, keys):
    """For each (scenario, baseline) of `pairs` that both ran, each server's
    figures in the scenario over its own in the baseline, pairs of the same
    repetition (then the median); the two names under `keys`."""
    ok = [r for r in runs if "error" not in r]
    out = []
    for name, baseline in pairs:
        for server in servers:
            ratio = pair_ratios(
                [r for r in ok if r["server"] == server and r["scenario"] == name],
                [r for r in ok if r["server"] == server and r["scenario"] == baseline])
            if ratio:
                out.append({keys[0]: name, keys[1]: baseline, "server": server, **ratio})
    return out


def tls_costs(servers, runs):
    """What TLS costs each server: for each pair of TLS_PAIRS that both ran,
    the TLS scenario's figures over the plaintext one's, same server and
    repetition (then the median)."""
    return same_server_ratios(TLS_PAIRS, servers, runs, ("tls", "plaintext"))


def write_costs(servers, runs):
    """What three writes per answer cost each server: multiwrite's figures
    over the one-write ping-pong's (WRITE_PAIRS), same server and repetition."""
    return same_server_ratios(WRITE_PAIRS, servers, runs, ("multiwrite", "pingpong"))


def streams_ratios(summary):
    """The framed scenarios' ratios to asyncio streams, one row per server."""
    return [{"scenario": e["name"], "server": server, **ratio[STREAMS]}
            for e in summary for server, ratio in e["ratios"].items() if STREAMS in ratio]


def fmt(x):
    """A figure with about 3 significant digits, thousands separated."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def percent(x):
    return "-" if x is None else f"{x:.0%}"


def cores_text(f):
    def bare(x):
        return "-" if x is None else f"{x * 100:.0f}"
    return f"{bare(f['server_core'])}/{bare(f['client_core'])}"


WIDTH = 100  # every line of the table fits this many columns
LABELS = {"uvloop": "uvloop", "c": "C"}


def columns(rows, right, groups=None):
    """Rows of cells as aligned lines, indented by 2 (cells in `right`
    right-aligned), two spaces apart, or one if that is too wide.  `groups`:
    (label, first column, last column), a line of labels above the rows,
    each right-aligned over its columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for sep in ("  ", " "):
        lines = ["  " + sep.join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                 for row in rows]
        if max(map(len, lines)) <= WIDTH:
            break
    if groups is not None:
        above = ""
        for label, first, last in groups:
            end = 2 + sum(widths[:last + 1]) + len(sep) * last
            above = above.ljust(end - len(label) - 1) + " " + label
        lines.insert(0, above.rstrip())
    return lines


def small_table(title, rows, names):
    """A heading and rows of (server, "A / B", value ratio, CPU/op ratio)."""
    cells = [["server", names, "throughput", "CPU/op"]]
    for server, pair, r in rows:
        cells.append([server, pair, fmt_ratio(r.get("value")),
                      fmt_ratio(r.get("cpu_per_op_us"))])
    cells.append(["", "better:", "higher", "lower"])
    return ["", *textwrap.wrap(title, WIDTH), *columns(cells, right={2, 3})]


def table(summary, meta, costs=(), writes=()):
    """The report: one block of rows per scenario, ratios to the references,
    then the ratios to asyncio streams, what TLS and three writes cost, and
    the notes; no line longer than WIDTH."""
    a, b = meta["load_average"]
    lines = [f"ngi benchmarks, {meta['date']}, {meta['mode']}: {meta['repeat']} "
             f"repetition(s) x {meta['duration']} s",
             f"{meta['pinning']}; 1-minute load average {a:.1f} before, {b:.1f} after", ""]
    header = ["server", "value", "p50 us", "p99 us", "CPU/op us", "srv CPU", "cores %"]
    better = [""] * (len(header) - 1) + ["better:"]
    groups = []
    refs = [ref for ref in REFERENCES if ref in meta["servers"]]  # those that ran
    for ref in refs:
        groups.append((f"vs {LABELS[ref]}", len(header), len(header) + 1))
        header += ["value", "CPU/op"]
        better += ["higher", "lower"]
    if not refs:
        better = [""] * len(header)
    rows, blocks = [header, better], []
    for entry in summary:
        blocks.append(len(rows))
        scenario = SCENARIOS_BY_NAME.get(entry["name"])
        for server in meta["servers"]:
            if scenario is not None and not serves(server, scenario):
                continue
            f = entry["servers"].get(server)
            if f is None:
                rows.append([server, "failed"] + [""] * (len(header) - 2))
                continue
            ratio = entry["ratios"].get(server, {})
            row = [server, fmt(f["value"]), fmt(f["p50_us"]), fmt(f["p99_us"]),
                   fmt(f["cpu_per_op_us"]), percent(f["server_cpu"]), cores_text(f)]
            for ref in refs:
                r = ratio.get(ref)
                row += ["", ""] if not r else [fmt_ratio(r.get("value")),
                                               fmt_ratio(r.get("cpu_per_op_us"))]
            rows.append(row)
    body = columns(rows, right=set(range(1, len(header))), groups=groups)
    lines += body[:3]
    blocks = [b + 1 for b in blocks]  # the line of groups came first
    for i, entry in enumerate(summary):
        direction = ("lower is better, its value ratios too" if entry["lower_is_better"]
                     else "higher is better")
        lines.append(f"{entry['name']}: {entry['title']}; {entry['unit']}, {direction}")
        end = blocks[i + 1] if i + 1 < len(blocks) else len(body)
        lines += body[blocks[i]:end]
    vs_streams = streams_ratios(summary)
    if vs_streams:
        lines += small_table(
            "vs asyncio streams: a framed scenario's figures over asyncio streams', "
            "same repetition",
            [(r["server"], r["scenario"], r) for r in vs_streams], "scenario")
    if costs:
        lines += small_table(
            "TLS/plaintext: a TLS scenario's figures over the plaintext one's, "
            "same server and repetition",
            [(c["server"], f"{c['tls']} / {c['plaintext']}", c) for c in costs], "scenarios")
    if writes:
        lines += small_table(
            "three writes/one write: multiwrite's figures over ping-pong's, same server "
            "and repetition",
            [(c["server"], f"{c['multiwrite']} / {c['pingpong']}", c) for c in writes],
            "scenarios")
    agreed = sorted({f["tls"] for e in summary for f in e["servers"].values() if "tls" in f})
    if agreed:
        lines += ["", "TLS as agreed by the load generator: " + "; ".join(agreed)]
    for name, reason in meta.get("unavailable", {}).items():
        lines += textwrap.wrap(f"not run: {name}: {reason}", WIDTH,
                               subsequent_indent="  ")
    lines += ["", LEGEND]
    return "\n".join(lines)


LEGEND = """\
value: throughput; for idle-10k, the server's RSS growth per connection (lower is better).
CPU/op: the server process's CPU time per request, MiB, connection, handshake (hs) or record
  (rec); kernel softirq time spent on its behalf is not charged to it, the same for all.
rec: a line or length-prefixed record (lines-, sized-); p50/p99 there are of a batch of 16.
srv CPU: the server process's share of one CPU while measuring.
cores %: how busy the server's core / the client's core was (all causes); a client core
  near 100 means the client, not the server, was the limit.
vs uvloop, vs C: the server's value and CPU/op over the reference's (over TLS, C is the C
  TLS server), medians of same-repetition pairs; "better:" says which way is better.
  vs asyncio streams (lines-, sized-), after the table, the same way."""


def plot(summary, path, meta):
    """Draw the figures into the PNG file `path`; False if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("ngi bench: --plot needs matplotlib (pip install 'ngi[bench]'); "
              "no plot written", file=sys.stderr)
        return False
    fig = figure(summary, meta)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def figure(summary, meta):
    """Bars of the medians, error bars from the lowest to the highest
    repetition; a title with the date and the mode.  (matplotlib's Agg.)"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = [("value", "{unit}"), ("cpu_per_op_us", "server CPU, us/{op}")]
    per_row = max(1, min(len(summary), 6))
    blocks = -(-len(summary) // per_row)
    fig, axes = plt.subplots(len(metrics) * blocks, per_row, squeeze=False,
                             figsize=(2.6 * per_row, 3.0 * len(metrics) * blocks + 0.7))
    for index, entry in enumerate(summary):
        block, column = divmod(index, per_row)
        names = list(entry["servers"])
        colours = ["tab:red" if n == "ngi" else "tab:gray" for n in names]
        for row, (key, label) in enumerate(metrics):
            ax = axes[block * len(metrics) + row][column]
            medians = [entry["servers"][n][key] for n in names]
            spreads = [entry["servers"][n]["spread"].get(key, (m, m))
                       for n, m in zip(names, medians)]
            errors = [[m - lo for m, (lo, _) in zip(medians, spreads)],
                      [hi - m for m, (_, hi) in zip(medians, spreads)]]
            ax.bar(names, medians, color=colours, yerr=errors if names else None,
                   capsize=3, error_kw={"elinewidth": 1})
            ax.set_title(entry["name"] if names else f"{entry['name']} (no result)",
                         fontsize=9)
            better = "lower" if key != "value" or entry["lower_is_better"] else "higher"
            ax.set_ylabel(f"{label.format(**entry)} ({better} is better)", fontsize=8)
            ax.tick_params(labelsize=7)
    for index in range(len(summary), blocks * per_row):
        block, column = divmod(index, per_row)
        for row in range(len(metrics)):
            axes[block * len(metrics) + row][column].axis("off")
    fig.suptitle(f"ngi bench, {meta['date']}, {meta['mode']}: medians of "
                 f"{meta['repeat']} repetition(s) x {meta['duration']} s; "
                 "error bars: min..max over the repetitions", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def markdown(text, meta):
    m = meta["machine"]
    return (f"# ngi benchmark results\n\n"
            f"- date: {meta['date']}\n"
            f"- machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
            f"Python {m['python']}\n"
            f"- command: `{meta['command']}`\n\n"
            f"```\n{text}\n```\n")


def machine():
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


def command_line(argv):
    launcher = sys.argv[0] if sys.argv else ""
    prefix = ("python -m ngi bench" if launcher.endswith("__main__.py")
              or os.path.basename(launcher) == "ngi" else "python benchmarks/run.py")
    return " ".join([prefix, *argv])


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="ngi bench", description=__doc__.split("\n\n")[3],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="0.5 s per run: the whole run in about two minutes "
                             "(figures are rougher)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help="comma-separated, from " + ", ".join(ALL_SERVERS)
                             + " (default %(default)s)")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                        help="comma-separated, from " + ", ".join(SCENARIO_NAMES))
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    parser.add_argument("--duration", type=float,
                        help="seconds measured per run (default 5; --quick: 0.5)")
    parser.add_argument("--idle-connections", type=int,
                        help="connections held for idle-10k (default 10000)")
    parser.add_argument("--json", metavar="FILE",
                        help="write everything measured as JSON to FILE ('-': stdout, "
                             "and the table goes to stderr)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the figures (matplotlib)")
    parser.add_argument("--markdown", metavar="FILE.md",
                        help="write the table, machine and command as Markdown "
                             "(as in benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or 3
    args.duration = args.duration or (0.5 if args.quick else 5.0)
    args.idle_connections = args.idle_connections or 10000
    if args.repeat < 1 or args.duration <= 0 or args.idle_connections < 1:
        parser.error("--repeat, --duration and --idle-connections must be positive")
    args.server_list = [s for s in args.servers.split(",") if s]
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    for s in args.server_list:
        if s not in ALL_SERVERS:
            parser.error(f"unknown server {s!r}; choose from {', '.join(ALL_SERVERS)}")
    for s in args.scenario_list:
        if s not in SCENARIO_NAMES:
            parser.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIO_NAMES)}")
    return args


def stop_on_sigterm(signum, frame):
    """A SIGTERM ends the run like Ctrl-C: the servers are killed first."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    options = parse_args(argv)
    servers = available_servers(options.server_list)
    scenarios = [s for s in SCENARIOS if s.name in options.scenario_list]
    if not any(serves(v, s) for s in scenarios for v in servers):
        print("ngi bench: nothing to run", file=sys.stderr)
        return 2
    limit = raise_descriptor_limit()
    if options.idle_connections + 100 > limit:
        print(f"ngi bench: only {limit} descriptors allowed; holding "
              f"{limit - 100} idle connections", file=sys.stderr)
        options.idle_connections = limit - 100
    if options.plot and importlib.util.find_spec("matplotlib") is None:
        print("ngi bench: --plot needs matplotlib (pip install 'ngi[bench]'); "
              "the run goes on without a plot", file=sys.stderr)
        options.plot = None
    cpus = sorted(os.sched_getaffinity(0))
    options.server_cpu, options.client_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    tools = {"loadgen": build("loadgen"), "echo_server": build("echo_server")}
    unavailable = {}
    cert_dir = None
    if any(s.tls for s in scenarios):
        try:
            tools.update(build_tls())
            cert_dir = tempfile.mkdtemp(prefix="tls-", dir=build_dir())
            tools["certificate"] = make_certificate(cert_dir)
        except Unavailable as e:
            if cert_dir:
                shutil.rmtree(cert_dir, ignore_errors=True)
                cert_dir = None
            print(f"ngi bench: the TLS scenarios are unavailable here: {e}", file=sys.stderr)
            unavailable = {s.name: str(e).splitlines()[0] for s in scenarios if s.tls}
            scenarios = [s for s in scenarios if not s.tls]
            if not scenarios:
                print("ngi bench: nothing else to run", file=sys.stderr)
                return 2

    on_terminal = sys.stderr.isatty()

    def progress(message, final=True):
        """Each run's result on a line; on a terminal, what runs now too."""
        if on_terminal:
            sys.stderr.write(f"\r\033[K{message}" + ("\n" if final else ""))
            sys.stderr.flush()
        elif final:
            print(message, file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    procs = Processes()
    runs = []
    interrupted = False
    on_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        run_all(scenarios, servers, tools, options, procs, progress, runs)
    except KeyboardInterrupt:
        print("\nngi bench: interrupted; what was measured so far:", file=sys.stderr)
        interrupted = True
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, on_term)
        if cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)

    summary = summarise(scenarios, servers, runs)
    costs = tls_costs(servers, runs)
    writes = write_costs(servers, runs)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "command": command_line(argv),
        "mode": "--quick" if options.quick else "full run",
        "repeat": options.repeat, "duration": options.duration,
        "idle_connections": options.idle_connections, "servers": servers,
        "pinning": (f"server on CPU {options.server_cpu}, client on CPU {options.client_cpu}"
                    if options.server_cpu is not None else "no pinning (1 CPU)"),
        "load_average": [load_before, os.getloadavg()[0]],
        "unavailable": unavailable,
    }
    errors = [r for r in runs if "error" in r]
    report = {"meta": meta, "scenarios": summary, "tls_vs_plaintext": costs,
              "multiwrite_vs_pingpong": writes, "runs": runs}
    text = table(summary, meta, costs, writes)
    if options.json == "-":
        print(text, file=sys.stderr)
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(text)
        if options.json:
            Path(options.json).write_text(json.dumps(report, indent=1) + "\n")
    if options.markdown:
        Path(options.markdown).write_text(markdown(text, meta))
    if options.plot and plot(summary, options.plot, meta):
        print(f"ngi bench: plot written to {options.plot}", file=sys.stderr)
    if errors:
        print(f"ngi bench: {len(errors)} run(s) failed:", file=sys.stderr)
        for r in errors:
            print(f"  {r['scenario']} {r['server']} rep {r['rep'] + 1}: {r['error']}",
                  file=sys.stderr)
    return 130 if interrupted else 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
