"""The testing implementation: NGI in memory, with no sockets and no threads.

Application code written against the NGI interfaces can be tested by passing
it this module (or a `Network`) instead of `ngi.net`.  Everything happens in
the calling thread: by default a ``write`` on one end of a connection calls
the other end's ``handle_input`` before it returns (unless that handler is
busy, see below), so a test can make a call and check the outcome on the
next line.

- `Connection` (and `TextConnection`) make a connected pair: test your
  handler on one end, and by default the other end prints what it gets.
- `listener`, `connect` (also called `connector`, zc.ngi's name), `udp`,
  `udp_listener` and `call_later` work like a real implementation's, with
  addresses that are just hashable keys.  They are bound to the default
  network, `network`.
- `connectable`, `peer`, `Connection.test_input` and
  `Connection.test_close` script the other side of a conversation.
- `Network(chunk_size=None, seed=None, deferred=False)` is an isolated
  network with its own listeners, its own virtual clock and its own rules:
  ``chunk_size`` splits every write into pieces (``'random'``: at random
  points, reproducible from ``seed``), ``deferred`` holds everything that
  crosses the network until `Network.pump` or `Network.run_until_idle`.
- Time is virtual: ``network.time()`` starts at 0.0 and moves only with
  ``network.advance(seconds)``, which runs the due timers in deadline order.
- Faults: `Connection.reset`, `Network.refuse`, `Network.delay_connect`.
- Flow control: ``write_buffer_size``, ``set_write_limits``, the handler's
  ``handle_pause_writing`` / ``handle_resume_writing``, and
  ``pause_reading`` / ``resume_reading`` / ``reading``.
- TLS: ``listener(..., ssl=context)``, ``connect(..., ssl=context,
  server_hostname=...)``, ``connection.ssl_object`` and
  ``connection.start_tls(...)``, with real handshakes and records over
  ``ssl.MemoryBIO`` pairs; the network carries (and cuts, defers and
  faults) the ciphertext, and the timeouts run on its clock.
- `ngi.testing.conformance` is the conformance suite that this and every
  other implementation pass.

Rules that keep tests close to a real network:

- Handlers are never re-entered.  Input or a close that arrives while a
  handler of that connection runs is queued and delivered, in order, after
  it returns; the same happens before a handler is set.
- A close from the peer takes effect when it is delivered to the handler, as
  the real implementation only learns of it by reading.
- Exceptions from application callbacks are printed with their traceback
  (so they show up in doctests) and logged under ``ngi.testing``; the
  connection concerned is closed.
- Binding an address that a listener already holds raises ``OSError``; a
  listener or UDP listener asked for the address ``None`` gets a fresh one.
  ``listener(server)`` is anonymous (``address`` None), reached only through
  its own ``connect``.  Addresses must be hashable.
- ``writelines`` pulls its iterable in the call for as long as the
  connection's write buffer stays at or below its high-water mark; the rest
  is pulled as the peer reads.

Flow control, in memory: what one end writes counts toward its
``write_buffer_size`` until the other end's handler is handed it, so a peer
that paused reading (or has no handler yet, or whose network is deferred
and not pumped) makes the writer's buffer grow.  ``handle_pause_writing``
is called by the write that takes the buffer above the high-water mark (as
in asyncio and ``ngi.net``); ``handle_resume_writing`` comes when the peer's
reading brings it back to the low-water mark, queued like input if the
handler is busy.  Neither comes after the connection closed.

Choices made where the API is silent: close reasons are ``'closed'`` (the
peer closed), ``'stopped'`` (the listener closed), a
``ConnectionResetError`` (the peer called `Connection.reset`), and
``'<method> raised <Name>: <message>'`` (a handler failed); a refused
connect fails with a ``ConnectionRefusedError``, a connect to an address
nobody listens on with ``'no such server'``; the client end of a connection
made through a listener has the listener's address as ``peer_address``,
every other end has ``'<test>'`` unless ``Connection(address=...,
peer_address=...)`` or ``connect(..., client_address=...)`` says otherwise.
Pieces of different writes are never merged into one ``handle_input``.
A connect handler without ``failed_connect`` is accepted (as by zc.ngi): a
failed connect is then logged at WARNING; a server callable that returns
without setting a handler is logged at WARNING too.

zc.ngi's testing API is here too: ``connection.closed`` (None while open,
True after the application's close, else the close reason),
``connection.handler``, ``listener.connect(connection, handler,
client_address)``, `PrintingHandler` ``(connection)`` installing itself,
and ``udp_listener(address)`` printing what arrives.
"""
from __future__ import annotations

# The pieces, one module each: _printing (the printing handlers),
# _connection (a connection's two ends and their life), _secure (a
# connection's TLS layer), _network (the network, its listeners, peers and
# timers), _reporting (how errors from application code are printed and
# logged).
from ngi.testing._connection import (
    Connection, ServerConnection, TextConnection)
from ngi.testing._network import Listener, Network, Peer, Timer, UDPListener
from ngi.testing._printing import (
    PrintingHandler, TextPrintingHandler, UDPPrintingHandler)

__all__ = [
    "Connection", "TextConnection", "ServerConnection",
    "PrintingHandler", "TextPrintingHandler", "UDPPrintingHandler",
    "Listener", "UDPListener", "Peer", "Network", "Timer", "network",
    "connect", "connector", "listener", "udp", "udp_listener",
    "connectable", "peer", "call_later",
]

# The classes are ngi.testing's wherever they are defined: their reprs,
# tracebacks and the API docs name them as they are imported.
for _class in (Connection, TextConnection, ServerConnection, PrintingHandler,
               TextPrintingHandler, UDPPrintingHandler, Listener, UDPListener, Peer, Network,
               Timer):
    _class.__module__ = __name__
del _class

network = Network()  # the default network, used by the functions below

connect = network.connect
connector = connect  # zc.ngi's name for it
listener = network.listener
udp = network.udp
udp_listener = network.udp_listener
call_later = network.call_later
connectable = network.connectable
peer = network.peer
