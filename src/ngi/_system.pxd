# What the core uses of the C library, the kernel and the compiler.
#
# Included by _core.pxd: part of the one extension module ngi._core.  What
# differs between platforms (epoll or kqueue, accept4, MSG_NOSIGNAL, the
# socket queue sizes) is behind _platform.h, declared last.

from libc.stdint cimport uint32_t, uint64_t
from posix.uio cimport iovec


cdef extern from *:
    """
    /* Fields other threads may touch are read and written with these:
       correct without the GIL too (free-threaded CPython).  GET/SET are
       for a field one thread writes and others read; ADD/XCHG/CAS for one
       several threads write. */
    #define NGI_GET(p) __atomic_load_n((p), __ATOMIC_RELAXED)
    #define NGI_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define NGI_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define NGI_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #define NGI_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define NGI_XCHG(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
    static inline int ngi_cas_int(int *p, int expected, int desired) {
        return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                           __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    """
    Py_ssize_t atomic_get "NGI_GET"(Py_ssize_t *p) nogil
    void atomic_set "NGI_SET"(Py_ssize_t *p, Py_ssize_t v) nogil
    Py_ssize_t atomic_add "NGI_ADD"(Py_ssize_t *p, Py_ssize_t v) nogil
    int atomic_load_int "NGI_LOAD"(int *p) nogil
    void atomic_store_int "NGI_STORE"(int *p, int v) nogil
    int atomic_exchange_int "NGI_XCHG"(int *p, int v) nogil
    bint atomic_cas_int "ngi_cas_int"(int *p, int expected, int desired) nogil


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    cdef struct sockaddr:
        sa_family_t sa_family

    cdef struct sockaddr_storage:
        sa_family_t ss_family

    cdef struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                     sockaddr *addr, socklen_t *addrlen)
    int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    int getpeername(int fd, sockaddr *addr, socklen_t *len)
    int getsockname(int fd, sockaddr *addr, socklen_t *len)
    int shutdown(int fd, int how)
    enum:
        AF_INET
        AF_INET6
        AF_UNIX
        SOL_SOCKET
        SO_ERROR
        SHUT_WR


cdef extern from "<netinet/in.h>" nogil:
    cdef struct in_addr:
        pass

    cdef struct in6_addr:
        pass

    cdef struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr

    cdef struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    unsigned short ntohs(unsigned short)
    uint32_t ntohl(uint32_t)
    enum:
        IPPROTO_TCP
        INET6_ADDRSTRLEN


cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY


cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)


cdef extern from "<sys/un.h>" nogil:
    cdef struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]


cdef extern from "<stddef.h>" nogil:
    size_t offsetof_sun_path "offsetof(struct sockaddr_un, sun_path)"


cdef extern from "_platform.h" nogil:
    # The poller, the waker and the platform's socket twins (see the file).
    const char *NGI_POLLER_NAME
    enum:
        NGI_IN
        NGI_OUT
        NGI_ERR
        NGI_HUP
        NGI_RDHUP
        NGI_ET
        NGI_SEND_FLAGS
        NGI_WRITE_ON_DEMAND
        NGI_UNKNOWN

    ctypedef struct ngi_poller:
        int fd
        int capacity
    int ngi_poller_open(ngi_poller *p, int capacity)
    void ngi_poller_close(ngi_poller *p)
    void ngi_poller_free(ngi_poller *p)
    int ngi_poller_add(ngi_poller *p, int fd, uint32_t events, uint64_t token)
    int ngi_poller_modify(ngi_poller *p, int fd, uint32_t old, uint32_t events,
                          uint64_t token)
    int ngi_poller_remove(ngi_poller *p, int fd)
    int ngi_poller_wait(ngi_poller *p, int timeout_ms)
    uint64_t ngi_event_token(const ngi_poller *p, int i)
    uint32_t ngi_event_bits(const ngi_poller *p, int i)
    int ngi_event_error(const ngi_poller *p, int i)

    ctypedef struct ngi_waker:
        int rfd
        int wfd
        int kq
    int ngi_waker_open(ngi_waker *w, ngi_poller *p)
    void ngi_waker_wake(ngi_waker *w)
    int ngi_waker_drain(ngi_waker *w)
    void ngi_waker_close(ngi_waker *w)

    int ngi_set_nonblocking(int fd)
    void ngi_socket_setup(int fd)
    int ngi_accept(int fd, sockaddr *addr, socklen_t *addrlen)
    int ngi_unread(int fd)
    int ngi_unsent(int fd)


cdef extern from "_openssl.h" nogil:
    # The interpreter's OpenSSL, called on the ssl module's objects (see
    # the file for why, and for the checks that make it safe).
    enum:
        NGI_SSL_ERROR_WANT_READ
        NGI_SSL_ERROR_ZERO_RETURN
    ctypedef struct ngi_openssl_api:
        int (*SSL_read_ex)(void *ssl, void *buf, size_t num, size_t *got) nogil
        int (*SSL_write_ex)(void *ssl, const void *buf, size_t num,
                            size_t *written) nogil
        int SSL_get_error(const void *ssl, int ret)
        int BIO_write(void *bio, const void *buf, int num)
        int BIO_read(void *bio, void *buf, int num)
        size_t BIO_ctrl_pending(void *bio)
        unsigned long ERR_peek_error()
        unsigned long ERR_peek_last_error()
        void ERR_clear_error()
        void ERR_error_string_n(unsigned long code, char *buf, size_t size)
        const char *ERR_reason_error_string(unsigned long code)
    ngi_openssl_api ngi_openssl
    void openssl_fresh_errors "NGI_OPENSSL_FRESH_ERRORS"()
    int ngi_openssl_load(const char *ssl_module_file)


cdef extern from "_openssl.h":
    void *ngi_openssl_session(object sslobj, object incoming, object outgoing,
                              void **bio_in, void **bio_out)
