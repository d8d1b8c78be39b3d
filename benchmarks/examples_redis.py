"""redis-benchmark against the RESP example on ngi, beside a real redis-server.

    python benchmarks/examples_redis.py [--requests 200000] [--pipeline 16]

Each server is one process on one CPU, redis-benchmark on the other.  Runs
PING, SET and GET without pipelining and with ``-P N``.  Prints a Markdown
table.
"""
import argparse
import shutil
import subprocess
import sys

from examples_common import (HOST, Server, free_port, machine, ngi_serve,
                             pin_client, table)

TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]


def servers(port):
    return {
        "ngi (examples.kv)": ngi_serve("examples.kv:server", port),
        "redis-server": ["redis-server", "--port", str(port), "--bind", HOST,
                         "--save", "", "--appendonly", "no", "--logfile", ""],
    }


def redis_benchmark(port, requests, clients, pipeline, client_cpus):
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-n", str(requests),
            "-c", str(clients), "-P", str(pipeline), "-t", "ping,set,get", "--csv"]
    if client_cpus:
        argv = ["taskset", "-c", ",".join(map(str, client_cpus))] + argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True,
                         timeout=600).stdout
    rates = {}
    for line in out.splitlines()[1:]:
        fields = line.replace('"', "").split(",")
        rates[fields[0]] = float(fields[1])
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    args = parser.parse_args(argv)
    for tool in ("redis-benchmark", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install "
                             "redis-tools redis-server)")
    server_cpus, client_cpus = pin_client()
    rows = []
    for name in servers(0):
        for pipeline in (1, args.pipeline):
            port = free_port()
            with Server(name, servers(port)[name], port, server_cpus):
                rates = redis_benchmark(port, args.requests, args.clients,
                                        pipeline, client_cpus)
            rows.append([name, pipeline] + [f"{rates[t]:,.0f}" for t in TESTS])
            print(" ".join(map(str, rows[-1])), file=sys.stderr)
    print(f"redis-benchmark, {args.clients} clients, {args.requests:,} requests "
          f"per test; requests/s. {machine()}.\n")
    print(table(["server", "pipeline"] + TESTS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
