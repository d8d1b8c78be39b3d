# Small helpers every part of the core uses: errors, time, the lock,
# descriptors and socket addresses.  Included by _core.pyx first.


cdef object os_error(int err):
    return OSError(err, strerror(err).decode("utf-8", "replace"))


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline int wait_ms(double seconds) noexcept:
    """A poll timeout in whole milliseconds, rounded up, at most a minute."""
    if seconds <= 0:
        return 0
    if seconds >= 60:
        return 60000
    return <int>(seconds * 1000.0) + 1


cdef inline void lock_acquire(PyThread_type_lock lock) noexcept:
    # Try without releasing the GIL first: the sections are a few
    # instructions long, so the lock is almost always free.
    if not PyThread_acquire_lock(lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(lock, WAIT_LOCK)


cdef int set_nonblocking(int fd) except -1:
    if ngi_set_nonblocking(fd) < 0:
        raise OSError(errno, strerror(errno).decode(), f"descriptor {fd}")
    return 0


cdef int set_nodelay(int fd) except -1:
    cdef int one = 1
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
    return 0


cdef object sockaddr_to_py(sockaddr *sa, socklen_t length):
    """Convert a socket address the way Python's socket module does."""
    cdef char host[INET6_ADDRSTRLEN + 1]
    cdef sockaddr_in *sin
    cdef sockaddr_in6 *sin6
    cdef sockaddr_un *sun
    cdef Py_ssize_t n
    if length == 0:
        return None
    if sa.sa_family == AF_INET:
        sin = <sockaddr_in *>sa
        inet_ntop(AF_INET, &sin.sin_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(sin.sin_port))
    if sa.sa_family == AF_INET6:
        sin6 = <sockaddr_in6 *>sa
        inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(sin6.sin6_port),
                ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        sun = <sockaddr_un *>sa
        n = <Py_ssize_t>length - <Py_ssize_t>offsetof_sun_path
        if n <= 0:
            return ""
        if sun.sun_path[0] == 0:  # Linux abstract namespace: keep the bytes
            return PyBytes_FromStringAndSize(sun.sun_path, n)
        n = strlen(sun.sun_path) if strlen(sun.sun_path) < <size_t>n else n
        return PyBytes_FromStringAndSize(sun.sun_path, n).decode(
            "utf-8", "surrogateescape")
    return None
