# The hot half of an ngi.aio connection (declarations; code in
# _aio_stream.pxi).  Included by _core.pxd.  ngi.aio's `_Connection`, a
# Python subclass, keeps everything else; these fields are its own, here
# so that the two calls made per request run no Python frame.  Written on
# the asyncio loop's thread, except `_open` (cleared by close() from any
# thread, under the GIL as any Python attribute).


cdef class AioStream:
    cdef public object _on_input   # handle_input of the handler, or a hold
    cdef public object _transport  # the asyncio transport, once made
    cdef public object _loop       # the asyncio loop the transport is on
    cdef public object _queue      # None, or what must go before a write
    cdef public bint _open         # the application may still use it
