"""Volume and concurrency beyond the unit tests."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import ngi.net

from helpers import Echo, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def test_one_gibibyte_echoed_intact():
    """1 GiB through an ngi echo server, compared by SHA-256."""
    impl = ngi.net.Implementation(name="ngi-stress-gib")
    listener = impl.listener(None, Echo)
    block = os.urandom(1 << 20)
    total = 1 << 30
    sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
    received = [0]
    errors = []
    try:
        with socket.create_connection(listener.address, timeout=60) as s:
            def send():
                try:
                    for i in range(total >> 20):
                        # A counter in each block: reordering would show.
                        chunk = i.to_bytes(8, "big") + block[8:]
                        sent_hash.update(chunk)
                        s.sendall(chunk)
                    s.shutdown(socket.SHUT_WR)
                except Exception as e:  # reported below
                    errors.append(e)

            sender = threading.Thread(target=send)
            sender.start()
            deadline = time.monotonic() + 240
            while received[0] < total and time.monotonic() < deadline:
                data = s.recv(1 << 20)
                if not data:
                    break
                got_hash.update(data)
                received[0] += len(data)
            sender.join(60)
        assert not errors
        assert received[0] == total
        assert got_hash.digest() == sent_hash.digest()
    finally:
        listener.close()
        impl.wait(30)


def test_ten_thousand_connections_times_a_hundred_messages(many_descriptors):
    assert many_descriptors >= 10_100, "the hard descriptor limit is too low"
    impl = ngi.net.Implementation(name="ngi-stress-10k")
    peak = [0]

    def server(connection):
        Echo(connection)
        peak[0] = max(peak[0], len(listener.connections()))

    listener = impl.listener(None, server)
    try:
        host, port = listener.address
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "ngi_client.py"), host, str(port),
             "10000", "100"], capture_output=True, text=True, timeout=200)
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        assert out.returncode == 0, (stats, out.stderr[-2000:])
        assert stats["done"] == 10_000 and stats["bad"] == 0
        assert stats["messages"] == 1_000_000
        wait_for(lambda: not listener.connections(), 30, "the server's closes")
        print(f"\n10k: peak {peak[0]} server connections at once, "
              f"client peak {stats['max_open']}")
        assert peak[0] >= 5000  # really concurrent, not one after another
    finally:
        listener.close()
        impl.wait(30)
