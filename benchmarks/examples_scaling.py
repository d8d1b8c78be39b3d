"""``ngi serve --workers 2`` against ``--workers 1``: ping-pong through loadgen.

    python benchmarks/examples_scaling.py [--seconds 5] [--connections 100]

Serves examples.echo:server with 1, then 2 workers (SO_REUSEPORT) and
drives it with benchmarks/loadgen.c in pingpong mode (64-byte messages).
Nothing is pinned: the workers and the client share the machine's CPUs.
CPU columns are CPU-seconds per second of the run (100% = one core busy),
the server's summed over its processes.  Prints a Markdown table.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from examples_common import ROOT, HOST, Server, free_port, machine, ngi_serve, table


def build_loadgen(directory):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"a C compiler is needed ({cc!r} not found; set CC)")
    binary = os.path.join(directory, "loadgen")
    subprocess.run([cc, "-O2", "-o", binary, str(ROOT / "benchmarks" / "loadgen.c")],
                   check=True)
    return binary


def cpu_seconds(pid):
    """CPU time of ``pid`` and its children (the workers), in seconds."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(child) for child in f.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def pingpong(loadgen, port, connections, size, seconds):
    out = subprocess.run([loadgen, "pingpong", HOST, str(port), str(connections),
                          str(size), str(seconds)],
                         capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result.get("errors"):
        raise SystemExit(f"loadgen reported errors: {result}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as build:
        loadgen = build_loadgen(build)
        results = {1: [], 2: []}
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            for workers in (1, 2):
                port = free_port()
                argv = ngi_serve("examples.echo:server", port, "--workers", str(workers))
                with Server(f"{workers} workers", argv, port) as server:
                    before = cpu_seconds(server.process.pid)
                    result = pingpong(loadgen, port, args.connections,
                                      args.size, args.seconds)
                    result["server_cpu"] = cpu_seconds(server.process.pid) - before
                    results[workers].append(result)
        for workers, runs in results.items():
            best = max(runs, key=lambda r: r["ops"] / r["seconds"])
            rates = sorted(r["ops"] / r["seconds"] for r in runs)
            rows.append([workers, f"{rates[len(rates) // 2]:,.0f}",
                         f"{best['ops'] / best['seconds']:,.0f}",
                         best["p50_us"], best["p99_us"],
                         f"{best['server_cpu'] / best['seconds']:.0%}",
                         f"{best['client_cpu'] / best['seconds']:.0%}"])
            print(" ".join(map(str, rows[-1])), file=sys.stderr)
    print(f"loadgen pingpong, {args.connections} connections, {args.size}-byte "
          f"messages, {args.seconds:g} s, {args.repeat} runs each. {machine()}.\n")
    print(table(["workers", "median req/s", "best req/s", "p50 µs (best)",
                 "p99 µs (best)", "server CPU (best)", "client CPU (best)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
