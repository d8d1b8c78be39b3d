# Record framing (declarations; code in _framing.pxi).  Included by
# _core.pxd.  A Framer belongs to one connection's input; loop thread only
# (ngi.testing: its one thread).


cdef enum FrameKind:
    FRAME_DELIMITED = 0  # a record ends with `delimiter` (a line, a header block)
    FRAME_SIZED = 1      # a record follows its length: 4 bytes, big-endian
    FRAME_RESP = 2       # a Redis command (RESP 2): the list of its arguments


cdef class Framer:
    cdef readonly int kind
    cdef readonly bytes delimiter     # FRAME_DELIMITED
    cdef readonly Py_ssize_t max_size # the longest record taken
    cdef readonly object error        # the limit broken (the close reason), or None
    cdef object too_long              # the exception class a broken limit makes
    cdef str message                  # FRAME_DELIMITED: what it says
    cdef bytearray partial            # an incomplete record (or header); exists
                                      # only while one is incomplete
    cdef Py_ssize_t start             # FRAME_RESP: where in `partial` the
                                      # next command starts
    cdef Py_ssize_t want              # FRAME_SIZED: the body's length, or -1
                                      # while the length itself is incomplete;
                                      # FRAME_DELIMITED: what expect() asked
                                      # for, or -1 (delimited records)

    cdef object next_record(self, const char *data, Py_ssize_t n, Py_ssize_t *pos)
    cdef object next_delimited(self, const char *data, Py_ssize_t n, Py_ssize_t *pos)
    cdef object next_sized(self, const char *data, Py_ssize_t n, Py_ssize_t *pos)
    cdef object next_wanted(self, const char *data, Py_ssize_t n, Py_ssize_t *pos)
    cdef object next_resp(self, const char *data, Py_ssize_t n, Py_ssize_t *pos)
    cdef object parse_resp(self, const char *b, Py_ssize_t n, Py_ssize_t *used)
    cdef str too_big(self)
    cdef object refuse(self, str message)
