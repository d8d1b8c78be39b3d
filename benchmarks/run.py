"""ngi's benchmark suite: echo servers under a C load generator.

    python benchmarks/run.py [--quick] [--servers ngi,asyncio,uvloop,c]
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
cores, a saturated client can hide a faster server.
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
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ALL_SERVERS = ("ngi", "asyncio", "uvloop", "c")
REFERENCES = ("uvloop", "c")  # ratios are given against these
HOLD = 60  # longest an idle run holds its connections (we end it sooner)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: str         # loadgen's mode
    count: int        # connections, flows or concurrent connects
    size: int = 0     # message size, for pingpong and udp
    unit: str = "req/s"
    op: str = "req"   # what "CPU per op" is per

    @property
    def lower_is_better(self):
        return self.mode == "idle"


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
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


class BenchError(Exception):
    """One run failed; the others go on."""


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


def build(name):
    """Compile benchmarks/NAME.c once per source version; return the binary."""
    source = HERE / f"{name}.c"
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"ngi bench: a C compiler is needed ({cc!r} not found; set CC)")
    digest = hashlib.sha1(source.read_bytes() + cc.encode()).hexdigest()[:12]
    binary = build_dir() / f"{name}-{digest}"
    if not binary.exists():
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        done = subprocess.run([cc, "-O2", "-o", str(partial), str(source)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"ngi bench: compiling {source} failed:\n{done.stderr}")
        os.replace(partial, binary)
    return binary


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

def server_command(server, tools):
    if server == "c":
        return [str(tools["echo_server"])]
    return [sys.executable, str(HERE / "servers.py"), server]


def warm_up(port):
    """One echo through the server, so lazy first-use allocations are done
    before its RSS is taken as the baseline."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise BenchError("the warm-up echo came back wrong")


def run_once(scenario, server, tools, options, procs):
    """Start the server, run the load generator against it, measure, stop."""
    with tempfile.TemporaryFile() as server_log, tempfile.TemporaryFile() as client_log:
        proc = procs.start(server_command(server, tools), cpu=options.server_cpu,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=server_log)
        try:
            return measure(scenario, server, proc, tools, options, procs, client_log)
        except (BenchError, OSError, ValueError) as e:
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
    warm_up(tcp_port)
    rss_before = rss_bytes(proc.pid)

    port = udp_port if scenario.mode == "udp" else tcp_port
    count = options.idle_connections if scenario.mode == "idle" else scenario.count
    argv = [str(tools["loadgen"]), scenario.mode, HOST, str(port), str(count)]
    if scenario.mode in ("pingpong", "udp"):
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
    record["server_core"] = core_busy(cores_start, cores_end, options.server_cpu)
    record["client_core"] = core_busy(cores_start, cores_end, options.client_cpu)
    return record


def figures(scenario, result, cpu_used, rss_growth):
    """Turn the load generator's counts into the reported figures."""
    ops, seconds = result["ops"], result["seconds"]
    if ops <= 0:
        raise BenchError("no operation completed")
    if scenario.mode == "stream":
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
        if server == "uvloop" and importlib.util.find_spec("uvloop") is None:
            print("ngi bench: uvloop is not installed (pip install 'ngi[bench]'); "
                  "skipping it", file=sys.stderr)
            continue
        servers.append(server)
    return servers


def run_all(scenarios, servers, tools, options, procs, progress, runs):
    """Every scenario x server x repetition, each run's record added to `runs`."""
    total = options.repeat * len(scenarios) * len(servers)
    started = time.monotonic()
    for rep in range(options.repeat):
        turn = rep % len(servers)
        order = servers[turn:] + servers[:turn]  # no server always goes first
        for scenario in scenarios:
            for server in order:
                done = len(runs)
                eta = ((time.monotonic() - started) / done * (total - done)) if done else 0
                label = (f"[{done + 1:>3}/{total}] rep {rep + 1}/{options.repeat} "
                         f"{scenario.name:<17} {server:<8}")
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


def summarise(scenarios, servers, runs):
    """Medians per scenario and server; ratios pair by pair, then medians."""
    out = []
    for scenario in scenarios:
        ok = [r for r in runs if r["scenario"] == scenario.name and "error" not in r]
        per_server = {}
        for server in servers:
            mine = [r for r in ok if r["server"] == server]
            if not mine:
                continue
            entry = {"runs": len(mine)}
            for key in ("value", "p50_us", "p99_us", "cpu_per_op_us", "server_cpu",
                        "client_cpu", "server_core", "client_core"):
                values = [r[key] for r in mine if r[key] is not None]
                entry[key] = statistics.median(values) if values else None
            per_server[server] = entry
        ratios = {}
        for server in servers:
            for ref in REFERENCES:
                if ref == server or ref not in servers:
                    continue
                pairs = [(a, b) for a in ok for b in ok
                         if a["server"] == server and b["server"] == ref
                         and a["rep"] == b["rep"]]
                if not pairs:
                    continue
                ratios.setdefault(server, {})[ref] = {
                    key: statistics.median(a[key] / b[key] for a, b in pairs)
                    for key in ("value", "cpu_per_op_us") if all(b[key] > 0 for _, b in pairs)
                }
        out.append({"name": scenario.name, "title": scenario.title,
                    "unit": scenario.unit, "op": scenario.op,
                    "lower_is_better": scenario.lower_is_better,
                    "servers": per_server, "ratios": ratios})
    return out


def fmt(x):
    """A figure with about 3 significant digits, thousands separated."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def percent(x):
    return "-" if x is None else f"{x:.0%}"


def cores_text(f):
    return f"{percent(f['server_core'])}/{percent(f['client_core'])}"


def ratio_text(ratio):
    if not ratio:
        return ""
    value, cpu = ratio.get("value"), ratio.get("cpu_per_op_us")
    return (f"{'-' if value is None else f'{value:.2f}x'} "
            f"cpu {'-' if cpu is None else f'{cpu:.2f}x'}")


def table(summary, meta):
    head = (f"ngi benchmarks, {meta['date']}: {meta['repeat']} repetition(s) x "
            f"{meta['duration']} s, {meta['pinning']}; 1-minute load average "
            "{:.1f} before, {:.1f} after".format(*meta["load_average"]))
    columns = ["scenario", "server", "value", "unit", "p50 us", "p99 us",
               "CPU/op us", "srv CPU", "cores", "vs uvloop", "vs C"]
    rows = []
    for entry in summary:
        for server, f in entry["servers"].items():
            ratio = entry["ratios"].get(server, {})
            rows.append([
                entry["name"], server, fmt(f["value"]), entry["unit"],
                fmt(f["p50_us"]), fmt(f["p99_us"]),
                f"{fmt(f['cpu_per_op_us'])}/{entry['op']}",
                f"{f['server_cpu']:.0%}", cores_text(f),
                *(ratio_text(ratio.get(ref)) for ref in REFERENCES)])
    widths = [max(len(str(row[i])) for row in [columns] + rows) for i in range(len(columns))]
    right = {2, 4, 5, 6, 7, 8}
    lines = [head, ""]
    for row in [columns] + rows:
        lines.append("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    lines += ["", LEGEND]
    return "\n".join(lines)


LEGEND = """\
value: throughput; for idle-10k, the server's RSS growth per connection (lower is better).
CPU/op: the server process's CPU time per request, MiB or connection (kernel softirq
  time spent on its behalf is not charged to it, the same for every server).
srv CPU: the server process's share of one CPU while measuring.
cores: how busy the server's core / the client's core was (all causes); a client core
  near 100% means the client, not the server, was the limit.
vs uvloop, vs C: value ratio, then CPU/op ratio; medians of same-repetition pairs."""


def plot(summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("ngi bench: --plot needs matplotlib (pip install 'ngi[bench]'); "
              "no plot written", file=sys.stderr)
        return False
    metrics = [("value", "{unit}"), ("cpu_per_op_us", "server CPU, us/{op}")]
    fig, axes = plt.subplots(len(metrics), len(summary), squeeze=False,
                             figsize=(2.6 * len(summary), 3.0 * len(metrics)))
    for column, entry in enumerate(summary):
        names = list(entry["servers"])
        colours = ["tab:red" if n == "ngi" else "tab:gray" for n in names]
        for row, (key, label) in enumerate(metrics):
            ax = axes[row][column]
            ax.bar(names, [entry["servers"][n][key] for n in names], color=colours)
            ax.set_title(entry["name"], fontsize=9)
            better = "lower" if key != "value" or entry["lower_is_better"] else "higher"
            ax.set_ylabel(f"{label.format(**entry)} ({better} is better)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


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
                        help="0.5 s per run: the whole run in about a minute "
                             "(figures are rougher)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS),
                        help="comma-separated, from %(default)s")
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
    if not servers or not scenarios:
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

    summary = summarise(scenarios, servers, runs)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "command": command_line(argv),
        "repeat": options.repeat, "duration": options.duration,
        "idle_connections": options.idle_connections, "servers": servers,
        "pinning": (f"server on CPU {options.server_cpu}, client on CPU {options.client_cpu}"
                    if options.server_cpu is not None else "no pinning (1 CPU)"),
        "load_average": [load_before, os.getloadavg()[0]],
    }
    errors = [r for r in runs if "error" in r]
    report = {"meta": meta, "scenarios": summary, "runs": runs}
    text = table(summary, meta)
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
    if options.plot and plot(summary, options.plot):
        print(f"ngi bench: plot written to {options.plot}", file=sys.stderr)
    if errors:
        print(f"ngi bench: {len(errors)} run(s) failed:", file=sys.stderr)
        for r in errors:
            print(f"  {r['scenario']} {r['server']} rep {r['rep'] + 1}: {r['error']}",
                  file=sys.stderr)
    return 130 if interrupted else 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
