# The hot half of an ngi.aio connection: included by _core.pyx.
#
# An echo over ngi.aio makes two calls per request besides the handler's
# own: the transport's `data_received` on the protocol, and the handler's
# `write` on the connection.  In Python each is a frame, as many as a
# plain asyncio Protocol runs in all; here they are C.  Everything else of
# the connection (flow control, queues, close, TLS upgrades) stays in
# ngi.aio's `_Connection`, which subclasses this and asyncio.Protocol.

_running_loop = None  # asyncio.events._get_running_loop, once first needed


cdef class AioStream:
    """The fields and the two hot methods of an ngi.aio connection."""

    def __cinit__(self, *args, **kwargs):
        global _running_loop
        if _running_loop is None:
            from asyncio.events import _get_running_loop
            _running_loop = _get_running_loop

    def data_received(self, data):
        """The transport's input: to the handler, or held (`_on_input`)."""
        try:
            self._on_input(self, data)
        except Exception as e:
            self._failed("handle_input", e)

    def write(self, data):
        """Queue bytes-like ``data`` (copied now unless ``bytes``); thread-safe.

        On the loop thread with nothing queued ahead, this is the
        transport's ``write``.  Raises ConnectionClosed once closed.
        """
        if not self._open:
            raise ConnectionClosed("write() on a closed connection")
        if type(data) is not bytes:
            data = _rules.as_bytes(data, "write()")
        if _running_loop() is self._loop:
            if self._queue is None:
                self._transport.write(data)
            else:
                self._enqueue(data)
        elif data:
            self._write_from_thread(data)
