# Record framing.  Included by _core.pyx; declarations in _framing.pxd.
#
# A Framer cuts records out of a byte stream as it arrives: straight from
# the loop's receive buffer (ngi.net) or from the bytes ngi.testing hands
# it (`feed`), so the two implementations cannot frame differently.
#
# * A record that arrives whole is one `bytes` made from the input, the
#   only copy.  Only an incomplete record is kept, in `partial`, which
#   exists only while one is incomplete; the record it ends in is joined
#   once, when its end arrives.
# * Limits hold before anything is kept: a run with no delimiter longer
#   than `max_size` (plus a delimiter's length less one, which may be the
#   start of one), or a length prefix over `max_size`, breaks the framer:
#   `error` is set, nothing more is cut, and the connection closes with it.
# * Sized records: the length is 4 bytes, big-endian; 0xFFFFFFFF is the
#   null marker (a keep-alive), skipped.
# * Redis commands (RESP 2): an array of bulk strings, or an inline
#   command (a line of words); the record is the list of the arguments,
#   and empty commands are skipped.  An incomplete command is kept whole
#   and parsed again from its start when more arrives (`start` marks
#   where it begins in `partial`, so that commands completed by one
#   arrival are taken without moving the rest).

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen,
                 const void *needle, size_t needlelen)
    void *memchr(const void *s, int c, size_t n)

cdef enum:
    MAX_DELIMITER = 64       # bytes; a line ending, a header block's end
    NULL_MARKER = 0xFFFFFFFF # a Sized keep-alive
    MAX_INLINE = 64 * 1024   # bytes: a RESP inline command (Redis's limit)
    MAX_ARGUMENTS = 1024 * 1024  # of one RESP command (Redis's limit)
    NUMBER_INCOMPLETE = -1   # read_number: the number's end has not arrived
    NUMBER_INVALID = -2      # read_number: not a number ending in CRLF
    # Characters of RESP, as C chars.
    CH_TAB = 9
    CH_LF = 10
    CH_CR = 13
    CH_SPACE = 32
    CH_DOLLAR = 36
    CH_STAR = 42
    CH_0 = 48
    CH_9 = 57


cdef inline Py_ssize_t read_number(const char *b, Py_ssize_t n, Py_ssize_t *p) noexcept:
    """The decimal number at b[p[0]:] ending in CRLF, moving p[0] past it."""
    cdef Py_ssize_t i = p[0], value = 0
    while i < n and CH_0 <= b[i] <= CH_9:
        value = value * 10 + (b[i] - CH_0)
        if value > (1 << 40) or i - p[0] > 16:
            return NUMBER_INVALID
        i += 1
    if i == n or (i == n - 1 and b[i] == CH_CR):
        return NUMBER_INCOMPLETE
    if i == p[0] or b[i] != CH_CR or b[i + 1] != CH_LF:
        return NUMBER_INVALID
    p[0] = i + 2
    return value


cdef inline bint blank(char c) noexcept:
    return c == CH_SPACE or c == CH_TAB or c == CH_CR


cdef inline Py_ssize_t find(const char *data, Py_ssize_t n, const char *delim,
                            Py_ssize_t d) noexcept:
    """Where `delim` starts in data[:n], or -1."""
    cdef const char *hit
    if n < d:
        return -1
    if d == 1:
        hit = <const char *>memchr(data, <unsigned char>delim[0], n)
    else:
        hit = <const char *>memmem(data, n, delim, d)
    return -1 if hit == NULL else hit - data


cdef bytes joined(bytearray head, const char *tail, Py_ssize_t n):
    """head + tail[:n], as one new bytes (head may be None)."""
    cdef Py_ssize_t h = 0 if head is None else PyByteArray_GET_SIZE(head)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h + n)
    cdef char *p = PyBytes_AS_STRING(out)
    if h:
        memcpy(p, PyByteArray_AS_STRING(head), h)
    if n:
        memcpy(p + h, tail, n)
    return out


cdef bytearray kept(bytearray partial, const char *data, Py_ssize_t n):
    """`partial` (made if None) with data[:n] appended."""
    cdef Py_ssize_t h
    if partial is None:
        return PyByteArray_FromStringAndSize(data, n)
    h = PyByteArray_GET_SIZE(partial)
    PyByteArray_Resize(partial, h + n)
    memcpy(PyByteArray_AS_STRING(partial) + h, data, n)
    return partial


@cython.final
cdef class Framer:
    """Cuts records from a byte stream; made by `delimited` or `sized`."""

    @staticmethod
    def delimited(delimiter, max_size, too_long=None, message=None):
        """Records that end with `delimiter` (not part of the record).

        A run of more than `max_size` bytes without it breaks the framer
        with `too_long(message)` (ValueError by default).
        """
        cdef Framer f = Framer.__new__(Framer)
        if type(delimiter) is not bytes:
            raise TypeError("the delimiter must be bytes, got "
                            f"{type(delimiter).__name__}")
        if not 1 <= PyBytes_GET_SIZE(delimiter) <= MAX_DELIMITER:
            raise ValueError(f"the delimiter must be 1 to {MAX_DELIMITER} "
                             f"bytes long, got {delimiter!r}")
        f.kind = FRAME_DELIMITED
        f.delimiter = delimiter
        f.max_size = _rules.non_negative_int("max_size", max_size)
        f.too_long = ValueError if too_long is None else too_long
        f.message = (message or f"a record longer than max_size={max_size} "
                     f"bytes with no {delimiter!r}")
        f.want = -1
        return f

    @staticmethod
    def sized(max_size, too_long=None):
        """Records each after its length (4 bytes, big-endian); a length
        over `max_size` breaks the framer with `too_long(...)`."""
        cdef Framer f = Framer.__new__(Framer)
        f.kind = FRAME_SIZED
        f.max_size = _rules.non_negative_int("max_size", max_size)
        f.too_long = ValueError if too_long is None else too_long
        f.want = -1
        return f

    @staticmethod
    def resp(max_size, too_long=None):
        """Redis commands (RESP 2), each the list of its arguments as
        bytes.  A bulk string over `max_size`, an incomplete command
        keeping more than `max_size` plus 64 KiB, or what is not RESP
        breaks the framer with `too_long(message)`, the message as Redis
        words it."""
        cdef Framer f = Framer.__new__(Framer)
        f.kind = FRAME_RESP
        f.max_size = _rules.non_negative_int("max_size", max_size)
        f.too_long = ValueError if too_long is None else too_long
        f.want = -1
        return f

    def __repr__(self):
        if self.kind == FRAME_RESP:
            return "<ngi framer: Redis commands>"
        if self.kind == FRAME_DELIMITED:
            return f"<ngi framer: records end with {self.delimiter!r}>"
        return "<ngi framer: records follow their 4-byte length>"

    @property
    def buffered(self):
        """Bytes of an incomplete record kept, waiting for the rest."""
        if self.partial is None:
            return 0
        return PyByteArray_GET_SIZE(self.partial) - self.start

    def expect(self, size):
        """Delimited records: the next record is the next `size` bytes,
        delimiters and all (an HTTP body after its head); then records end
        with the delimiter again."""
        if self.kind != FRAME_DELIMITED:
            raise ValueError("expect() is for delimited records; sized "
                             "records carry their own length")
        size = _rules.non_negative_int("size", size)
        if size < self.buffered:  # kept bytes would belong to two records
            raise ValueError(f"expect({size}) with {self.buffered} bytes "
                             "already kept: call it between records")
        self.want = size

    def cut(self, data, Py_ssize_t pos=0):
        """``(record, end)``: the next record that `data` from `pos` on
        completes and where it ended, or ``(None, len(data))``.  One at a
        time, so that a handler may call `expect` between records."""
        if type(data) is not bytes:
            raise TypeError(f"cut() expects bytes, got {type(data).__name__}")
        if not 0 <= pos <= PyBytes_GET_SIZE(data):
            raise ValueError(f"pos must be within the data, got {pos}")
        record = self.next_record(PyBytes_AS_STRING(data),
                                  PyBytes_GET_SIZE(data), &pos)
        return record, pos

    def feed(self, data):
        """The records that `data` completes, in order (how ngi.testing,
        and any connection without the core's fast path, frames)."""
        cdef bytes b = _rules.as_bytes(data, "feed()")
        cdef Py_ssize_t pos = 0
        cdef list out = []
        if self.error is not None:
            return out
        while True:
            record = self.next_record(PyBytes_AS_STRING(b),
                                      PyBytes_GET_SIZE(b), &pos)
            if record is None:
                return out
            out.append(record)

    cdef object next_record(self, const char *data, Py_ssize_t n, Py_ssize_t *pos):
        """The next record, taking input from data[pos[0]:n] and moving
        pos[0] past what it used; None once all of it is used (what is
        left of an incomplete record is kept), or a limit is broken."""
        if self.error is not None:
            pos[0] = n
            return None
        if self.kind == FRAME_DELIMITED:
            if self.want >= 0:
                return self.next_wanted(data, n, pos)
            return self.next_delimited(data, n, pos)
        if self.kind == FRAME_RESP:
            return self.next_resp(data, n, pos)
        return self.next_sized(data, n, pos)

    cdef object next_delimited(self, const char *data, Py_ssize_t n, Py_ssize_t *pos):
        cdef const char *delim = PyBytes_AS_STRING(self.delimiter)
        cdef Py_ssize_t d = PyBytes_GET_SIZE(self.delimiter)
        cdef Py_ssize_t p = pos[0], i, old, head, start
        cdef bytearray partial = self.partial
        cdef bytes record
        if partial is None:  # the usual case: the record starts here
            i = find(data + p, n - p, delim, d)
            if i >= 0:
                if i > self.max_size:
                    return self.refuse(self.message)
                pos[0] = p + i + d
                return PyBytes_FromStringAndSize(data + p, i)
            if n - p > self.max_size + d - 1:
                return self.refuse(self.message)
            if n > p:
                self.partial = PyByteArray_FromStringAndSize(data + p, n - p)
            pos[0] = n
            return None
        old = PyByteArray_GET_SIZE(partial)
        # A delimiter may start in what was kept and end in the new input.
        head = min(d - 1, n - p)
        if head > 0:
            kept(partial, data + p, head)
            start = max(0, old - (d - 1))
            i = find(PyByteArray_AS_STRING(partial) + start,
                     old + head - start, delim, d)
            if i >= 0:
                i += start
                if i > self.max_size:
                    return self.refuse(self.message)
                record = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(partial), i)
                pos[0] = p + i + d - old
                self.partial = None
                return record
            PyByteArray_Resize(partial, old)
        i = find(data + p, n - p, delim, d)
        if i >= 0:
            if old + i > self.max_size:
                return self.refuse(self.message)
            record = joined(partial, data + p, i)
            pos[0] = p + i + d
            self.partial = None
            return record
        if old + (n - p) > self.max_size + d - 1:
            return self.refuse(self.message)
        kept(partial, data + p, n - p)
        pos[0] = n
        return None

    cdef object next_sized(self, const char *data, Py_ssize_t n, Py_ssize_t *pos):
        cdef Py_ssize_t p = pos[0], have, need
        cdef unsigned char length[4]
        cdef unsigned long size
        cdef bytes record
        while True:
            if self.want < 0:  # the length first
                have = 0 if self.partial is None else PyByteArray_GET_SIZE(self.partial)
                if have + (n - p) < 4:
                    if n > p:
                        self.partial = kept(self.partial, data + p, n - p)
                    pos[0] = n
                    return None
                if have:
                    memcpy(length, PyByteArray_AS_STRING(self.partial), have)
                    self.partial = None
                memcpy(length + have, data + p, 4 - have)
                p += 4 - have
                size = ((<unsigned long>length[0] << 24) | (length[1] << 16)
                        | (length[2] << 8) | length[3])
                if size == NULL_MARKER:
                    continue
                if <Py_ssize_t>size > self.max_size:
                    pos[0] = p
                    return self.refuse(f"a {size}-byte record is over "
                                       f"max_size={self.max_size} bytes")
                self.want = size
            pos[0] = p
            return self.next_wanted(data, n, pos)

    cdef object next_wanted(self, const char *data, Py_ssize_t n, Py_ssize_t *pos):
        """A record of `want` bytes: a sized record's body, or what
        expect() asked for."""
        cdef Py_ssize_t p = pos[0]
        cdef Py_ssize_t have = 0 if self.partial is None else PyByteArray_GET_SIZE(self.partial)
        cdef Py_ssize_t need = self.want - have
        cdef bytes record
        if n - p >= need:
            record = (joined(self.partial, data + p, need) if have
                      else PyBytes_FromStringAndSize(data + p, need))
            self.partial = None
            self.want = -1
            pos[0] = p + need
            return record
        if n > p:
            self.partial = kept(self.partial, data + p, n - p)
        pos[0] = n
        return None

    cdef object next_resp(self, const char *data, Py_ssize_t n, Py_ssize_t *pos):
        cdef Py_ssize_t used = 0, size
        cdef bytearray partial = self.partial
        cdef char *kept_data
        if partial is None:  # the usual case: commands start here
            while pos[0] < n:
                command = self.parse_resp(data + pos[0], n - pos[0], &used)
                if command is None:
                    if self.error is None:
                        self.partial = PyByteArray_FromStringAndSize(
                            data + pos[0], n - pos[0])
                        self.start = 0
                        if n - pos[0] > self.max_size + MAX_INLINE:
                            self.refuse(self.too_big())
                    pos[0] = n
                    return None
                pos[0] += used
                if PyList_GET_SIZE(<list>command):
                    return command
            return None
        if n > pos[0]:  # an incomplete command: parse it with what came
            kept(partial, data + pos[0], n - pos[0])
            pos[0] = n
        while True:
            size = PyByteArray_GET_SIZE(partial) - self.start
            if size == 0:
                self.partial = None
                self.start = 0
                return None
            kept_data = PyByteArray_AS_STRING(partial)
            command = self.parse_resp(kept_data + self.start, size, &used)
            if command is None:
                if self.error is None:
                    if self.start:  # move the incomplete command to the front
                        memmove(kept_data, kept_data + self.start, size)
                        PyByteArray_Resize(partial, size)
                        self.start = 0
                    if size > self.max_size + MAX_INLINE:
                        self.refuse(self.too_big())
                return None
            self.start += used
            if PyList_GET_SIZE(<list>command):
                return command

    cdef str too_big(self):
        return (f"too big request: an incomplete command over "
                f"max_size={self.max_size} bytes and 64 KiB")

    cdef object parse_resp(self, const char *b, Py_ssize_t n, Py_ssize_t *used):
        """The command at b[:n], and its length in used[0]; None if it is
        incomplete, or not RESP (then `error` is set)."""
        cdef Py_ssize_t p = 1, i, end, first, count, size, k
        cdef const char *hit
        cdef list arguments = []
        if b[0] != CH_STAR:  # inline: words up to the end of the line
            hit = <const char *>memchr(b, CH_LF, n)
            if hit == NULL:
                if n > MAX_INLINE:
                    return self.refuse("too big inline request")
                return None
            end = hit - b
            if end > MAX_INLINE:
                return self.refuse("too big inline request")
            used[0] = end + 1
            i = 0
            while i < end:
                while i < end and blank(b[i]):
                    i += 1
                first = i
                while i < end and not blank(b[i]):
                    i += 1
                if i > first:
                    arguments.append(PyBytes_FromStringAndSize(b + first, i - first))
            return arguments
        count = read_number(b, n, &p)
        if count == NUMBER_INCOMPLETE:
            return None
        if count == NUMBER_INVALID or count > MAX_ARGUMENTS:
            return self.refuse("invalid multibulk length")
        for k in range(count):
            if p >= n:
                return None
            if b[p] != CH_DOLLAR:
                return self.refuse(f"expected '$', got '{chr(<unsigned char>b[p])}'")
            p += 1
            size = read_number(b, n, &p)
            if size == NUMBER_INCOMPLETE:
                return None
            if size == NUMBER_INVALID or size > self.max_size:
                return self.refuse("invalid bulk length")
            if n - p < size + 2:
                return None
            arguments.append(PyBytes_FromStringAndSize(b + p, size))
            p += size + 2
        used[0] = p
        return arguments

    cdef object refuse(self, str message):
        """A limit is broken: keep nothing more, and say why."""
        self.error = self.too_long(message)
        self.partial = None
        return None
