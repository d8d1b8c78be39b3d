"""A load client in its own process (so its descriptors are its own).

    python ngi_client.py HOST PORT CONNECTIONS MESSAGES

Each connection sends MESSAGES numbered messages one at a time, checks
each echo, then closes.  Prints a JSON summary; exits 1 on any failure.
Runs on ngi.net itself, through an Inline loop bounded in time.
"""
import json
import resource
import sys

import ngi.net
from ngi.interfaces import Timeout


def main():
    host, port, count, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    impl = ngi.net.Inline()
    stats = {"connected": 0, "done": 0, "failed": 0, "bad": 0, "closed_early": 0,
             "messages": 0, "max_open": 0}
    open_now = [0]

    class Client:
        def __init__(self, n):
            self.n = n
            self.i = 0
            self.pending = b""

        def message(self):
            return b"%08d:%08d;" % (self.n, self.i)

        def connected(self, connection):
            stats["connected"] += 1
            open_now[0] += 1
            stats["max_open"] = max(stats["max_open"], open_now[0])
            connection.set_handler(self)
            connection.write(self.message())

        def failed_connect(self, reason):
            stats["failed"] += 1

        def handle_input(self, connection, data):
            self.pending += data
            want = self.message()
            if len(self.pending) < len(want):
                return
            if self.pending != want:
                stats["bad"] += 1
                connection.close()
                open_now[0] -= 1
                return
            stats["messages"] += 1
            self.pending = b""
            self.i += 1
            if self.i == messages:
                stats["done"] += 1
                open_now[0] -= 1
                connection.close()
            else:
                connection.write(self.message())

        def handle_close(self, connection, reason):
            stats["closed_early"] += 1
            open_now[0] -= 1

    for n in range(count):
        impl.connect((host, port), Client(n))
    try:
        impl.loop(120)
    except Timeout:
        stats["timeout"] = True
    print(json.dumps(stats), flush=True)
    ok = stats["done"] == count and not stats.get("timeout")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
