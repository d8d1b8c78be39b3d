"""An ngi echo server with few descriptors, for the exhaustion test.

    python emfile_server.py LIMIT SECONDS

Sets its soft descriptor limit to LIMIT, listens on a free port, prints
the port, and serves for SECONDS (then exits by itself).
"""
import logging
import os
import resource
import sys

import ngi.net
from ngi.interfaces import Timeout

# Run as a script: tests/ and the checkout (for examples/) are not on the
# path yet.
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]
from helpers import Echo  # noqa: E402


def main():
    limit, seconds = int(sys.argv[1]), float(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="LOG %(levelname)s %(message)s")
    impl = ngi.net.Inline()
    listener = impl.listener(None, Echo)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    print(listener.address[1], flush=True)
    impl.call_later(seconds, listener.close)
    try:
        impl.loop(seconds + 5)
    except Timeout:
        pass


if __name__ == "__main__":
    main()
