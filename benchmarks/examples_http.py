"""wrk against the HTTP example on ngi, and the same code on asyncio and uvloop.

    python benchmarks/examples_http.py [--duration 5] [--connections 50]

Each server is one process on one CPU, wrk (one thread) on the other.
Scenarios: keep-alive (one request at a time per connection) and pipelined
(16 requests per write, through a wrk Lua script).  Prints a Markdown table.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile

from examples_common import (HOST, Server, free_port, machine, ngi_serve,
                             pin_client, table)

PIPELINE = """
init = function(args)
   local r = {}
   for i = 1, tonumber(args[1]) do r[i] = wrk.format() end
   req = table.concat(r)
end
request = function() return req end
"""

SERVERS = {
    "ngi": lambda port: ngi_serve("examples.httpserver:server", port),
    "asyncio": lambda port: [sys.executable, "-m", "examples.httpserver_asyncio",
                             str(port)],
    "uvloop": lambda port: [sys.executable, "-m", "examples.httpserver_asyncio",
                            str(port), "--uvloop"],
}


def wrk(port, duration, connections, client_cpus, script=None, depth=None):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        argv += ["-s", script]
    argv.append(f"http://{HOST}:{port}/")
    if depth:
        argv += ["--", str(depth)]
    if client_cpus:
        argv = ["taskset", "-c", ",".join(map(str, client_cpus))] + argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk reported errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return rate, p50, p99


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    server_cpus, client_cpus = pin_client()
    names = args.servers.split(",")
    runs = {name: [] for name in names}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(PIPELINE)
        script.flush()
        for _ in range(args.repeat):  # interleaved, so drift hits all alike
            for name in names:
                port = free_port()
                with Server(name, SERVERS[name](port), port, server_cpus):
                    keep_alive = wrk(port, args.duration, args.connections,
                                     client_cpus)
                    pipelined = wrk(port, args.duration, args.connections,
                                    client_cpus, script.name, args.depth)
                runs[name].append((keep_alive, pipelined))
                print(f"{name}: {keep_alive[0]:,.0f} req/s, pipelined "
                      f"{pipelined[0]:,.0f} req/s", file=sys.stderr)
    rows = []
    for name in names:
        # The median run by keep-alive rate, and the median pipelined rate.
        by_rate = sorted(runs[name], key=lambda run: run[0][0])
        rate, p50, p99 = by_rate[len(by_rate) // 2][0]
        pipelined = sorted(run[1][0] for run in runs[name])[len(by_rate) // 2]
        rows.append([name, f"{rate:,.0f}", p50, p99, f"{pipelined:,.0f}"])
    print(f"wrk, 1 thread, {args.connections} connections, {args.duration} s "
          f"per run, median of {args.repeat} runs; pipelined: {args.depth} "
          f"requests per write (wrk's latencies are not meaningful there). "
          f"{machine()}.\n")
    print(table(["server", "keep-alive req/s", "p50", "p99",
                 f"pipelined ×{args.depth} req/s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
