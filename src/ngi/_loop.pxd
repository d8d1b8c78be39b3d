# The loop: watchers, timers, calls from other threads (declarations; code
# in _loop.pxi).  Included by _core.pxd.
#
# Thread ownership, here and in every declaration file of the core: a
# field is written by the loop thread only, unless its comment says "any
# thread"; those are read and written with the atomic helpers of
# _system.pxd.  A field another thread reads is written atomically too.


cdef enum Op:
    # What another thread (or a timer) asks the loop to do: an operation
    # and its receiver, queued as (op, receiver, arg) and run by
    # Loop.perform on the loop thread.  No Python closure is made for it.
    OP_CALL = 0            # receiver(*arg): a Python callable, arg a tuple
    OP_REGISTER            # Watcher: register it with the poller for arg (a mask)
    OP_START_TIMER         # Timer: count it and push it on the heap
    OP_CANCEL_TIMER        # Timer: uncount it and drop its callable
    OP_SET_HANDLER         # Connection: arg is the new handler
    OP_WRITE               # Connection: arg is bytes written from another thread
    OP_WRITELINES          # Connection: arg is an iterator
    OP_WRITEV              # Connection: arg is a list of bytes, written as one
    OP_CHECK_LIMITS        # Connection: the marks changed, check for a crossing
    OP_RESUME_READING      # Connection
    OP_CLOSE               # Connection: the application's close()
    OP_ABORT               # Connection: close now, drop the queue, tell nobody
    OP_STOP                # Connection: its listener stopped it: lost 'stopped'
    OP_LINGER_OVER         # Connection: the lingering close's bound expired
    OP_SERVE               # Connection: arg is the server callable to hand it to
    OP_START_TLS           # Connection: arg is begin_tls's arguments, a tuple
    OP_TLS_TIMEOUT         # Connection: the handshake's bound expired
    OP_FORGET              # Listener: arg, a connection of its, is gone
    OP_CLOSE_LISTENER      # Listener: stop accepting; arg is the drain handler or None
    OP_STOP_ALL            # Listener: stop every connection still open
    OP_RESUME_ACCEPT       # Listener: the out-of-descriptors rest is over
    OP_CLOSE_UDP           # UDPListener: stop receiving


cdef class Window:
    """A part of a loop's receive buffer lent to Python code that takes a
    buffer (the ssl module's BIO writes and reads): one object per loop,
    moved before each call, instead of a memoryview made per call.  Safe
    because each such call is done with the buffer when it returns."""
    cdef char *start
    cdef Py_ssize_t length
    cdef object owner            # the Loop, so the buffer outlives any view
    cdef inline Window at(self, char *start, Py_ssize_t length):
        self.start = start
        self.length = length
        return self


cdef class Watcher:
    """Something registered with the loop's poller: a socket and its role."""
    cdef int fd                  # -1 once closed
    cdef uint32_t mask           # the events registered for, 0 if none
    cdef Loop loop               # set before the watcher is shared
    cdef int on_event(self, uint32_t events) except -1
    cdef int on_error(self, uint32_t events, int err) except -1
    cdef int perform(self, int op, object arg) except -1


cdef enum TimerState:            # Timer.state, any thread (atomic)
    TIMER_PENDING = 0
    TIMER_CANCELLED = 1          # by cancel(), from any thread
    TIMER_FIRED = 2              # by the loop, as it runs it


cdef class Timer:
    cdef readonly double when    # monotonic deadline; set before it is shared
    cdef int state               # a TimerState; any thread
    cdef int op                  # what firing does: Loop.perform(op, target, arg)
    cdef object target
    cdef object arg
    cdef bint counted            # keeps the loop running while pending
    cdef Loop loop


cdef class Loop:
    cdef Poller poller
    cdef Waker waker
    cdef PyThread_type_lock lock # guards pending and wake_pending
    cdef list pending            # (op, receiver, arg) from other threads; under lock
    cdef int wake_pending        # pending is not empty; written under lock, read atomically
    cdef list ready              # connections that may have work without an edge
    cdef Py_ssize_t thread_id    # ident of the thread in run(), or 0; read by any thread
    cdef Py_ssize_t active       # open watchers and counted timers; any thread (atomic)
    cdef set watchers            # registered watchers, kept alive by the loop
    cdef list graveyard          # watchers removed during this pass
    cdef list timers             # heap of (when, seq, Timer)
    cdef unsigned long timer_seq
    cdef Py_ssize_t dead_timers  # cancelled timers still in the heap (about)
    cdef char *buf               # the receive buffer every recv lands in
    cdef Window window           # a part of buf, as a buffer object (TLS)
    cdef object bufsize_obj      # bufsize as a Python int, made once
    cdef Py_ssize_t bufsize
    cdef public bint propagate   # Inline mode: handler errors leave run(); set before it runs
    cdef object failure          # the handler error run() raises next
    cdef public object logger    # set before it runs

    # Calls from other threads.
    cdef int submit(self, int op, object receiver, object arg) except -1
    cdef int here_or_soon(self, int op, object receiver, object arg) except -1
    cdef int perform(self, int op, object receiver, object arg) except -1
    cdef int run_pending(self) except -1
    # Timers.
    cdef Timer new_timer(self, double delay, int op, object target, object arg)
    cdef int start_timer(self, Timer t) except -1
    cdef int push_timer(self, Timer t) except -1
    cdef int cancel_timer(self, Timer t) except -1
    cdef int run_timers(self) except -1
    # Watchers.
    cdef int count(self, Py_ssize_t delta) except -1
    cdef int set_interest(self, Watcher w, uint32_t mask) except -1
    cdef int hand_over(self, Watcher old, Watcher new, uint32_t mask) except -1
    cdef int attach(self, Watcher w, uint32_t mask) except -1
    cdef int detach(self, Watcher w) except -1
    cdef int run_ready(self) except -1
    # Errors of application code.
    cdef int report(self, str what, object exc, object logger=*) except -1
    cdef inline bint on_loop_thread(self) noexcept
    cdef inline bint is_idle(self) noexcept
