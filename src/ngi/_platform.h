/* The platform under ngi's core: the readiness poller (epoll or kqueue),
 * the waker, and the socket calls that differ between Linux, macOS and the
 * BSDs.  Everything above this file is written once, in the loop's
 * vocabulary: epoll's event bits (NGI_IN, NGI_OUT, ...), one token per
 * registration, one waker.
 *
 * Which poller: NGI_USE_KQUEUE (set by setup.py where <sys/event.h> is
 * found, or by NGI_POLLER=kqueue) selects kqueue, otherwise epoll.
 * NGI_PORTABLE (set with kqueue on Linux, where libkqueue provides it)
 * also selects the portable twins of the Linux-only socket calls, so that
 * they run in the test suite here too.
 *
 * kqueue's pitfalls, and how they are met:
 *  - One kevent per filter: a socket both readable and writable comes back
 *    as two events with the same token; the loop takes them one by one.
 *  - EV_CLEAR is the edge-triggered mode (epoll's EPOLLET); without it a
 *    filter is level-triggered, as listeners want.
 *  - EV_EOF on the read filter is epoll's RDHUP (the peer finished
 *    sending); on the write filter, its HUP (the peer is gone).
 *  - Deleting a filter of a descriptor that was closed, or never added,
 *    fails with ENOENT (macOS) or EBADF (FreeBSD): harmless, ignored.  The
 *    loop deletes before it closes, so libkqueue keeps no stale state.
 *  - EV_ADD on a filter already there updates it instead of failing (but
 *    not in libkqueue: a modify that must change a filter deletes it, then
 *    adds it).
 *  - A connection watches the write filter only while data waits for the
 *    kernel (NGI_WRITE_ON_DEMAND).  Always on, every acknowledgement that
 *    frees send space would be an event of its own, and libkqueue, which
 *    turns one epoll event into a kevent per filter, drops the kevents
 *    that do not fit in the caller's array: an edge lost for good.
 *  - The waker is an EVFILT_USER event where the platform has it, else a
 *    pipe.
 */
#ifndef NGI_PLATFORM_H
#define NGI_PLATFORM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifdef NGI_USE_KQUEUE
#include <sys/event.h>
#define NGI_POLLER_NAME "kqueue"
#define NGI_WRITE_ON_DEMAND 1
/* The loop's vocabulary: epoll's values, so both builds read alike. */
#define NGI_IN 0x001u
#define NGI_OUT 0x004u
#define NGI_ERR 0x008u
#define NGI_HUP 0x010u
#define NGI_RDHUP 0x2000u
#define NGI_ET (1u << 31)
#else
#include <sys/epoll.h>
#include <sys/eventfd.h>
#define NGI_POLLER_NAME "epoll"
#define NGI_WRITE_ON_DEMAND 0  /* one epoll event carries both directions */
#define NGI_IN EPOLLIN
#define NGI_OUT EPOLLOUT
#define NGI_ERR EPOLLERR
#define NGI_HUP EPOLLHUP
#define NGI_RDHUP EPOLLRDHUP
#define NGI_ET EPOLLET
#endif

#if defined(__linux__) && !defined(NGI_PORTABLE)
#define NGI_LINUX_SOCKETS 1  /* accept4 */
#endif

/* Every send is made with these flags: no SIGPIPE where the flag exists;
 * elsewhere each socket gets SO_NOSIGPIPE (ngi_socket_setup). */
#ifdef MSG_NOSIGNAL
#define NGI_SEND_FLAGS MSG_NOSIGNAL
#else
#define NGI_SEND_FLAGS 0
#endif

/* Descriptor flags through ioctl, not fcntl: glibc 2.28 renamed fcntl
 * (fcntl64), and a wheel calling it would need manylinux_2_28. */
static int ngi_set_nonblocking(int fd)
{
    int one = 1;
    return ioctl(fd, FIONBIO, &one);
}

static int ngi_set_cloexec(int fd)
{
    return ioctl(fd, FIOCLEX);
}

/* -- the poller --------------------------------------------------------- */

#define NGI_UNKNOWN 0xffffffffu  /* a registration's old events, not known */

typedef struct {
    int fd;        /* the epoll or kqueue descriptor; -1 once closed */
    int capacity;  /* events one wait can return */
#ifdef NGI_USE_KQUEUE
    struct kevent *events;
#else
    struct epoll_event *events;
#endif
} ngi_poller;

/* 0, or -1 with errno set. */
static int ngi_poller_open(ngi_poller *p, int capacity)
{
    p->fd = -1;
    p->capacity = capacity;
    p->events = calloc((size_t)capacity, sizeof(*p->events));
    if (p->events == NULL) {
        errno = ENOMEM;
        return -1;
    }
#ifdef NGI_USE_KQUEUE
    p->fd = kqueue();
    if (p->fd >= 0 && ngi_set_cloexec(p->fd) < 0) {
        int err = errno;
        close(p->fd);
        p->fd = -1;
        errno = err;
    }
#else
    p->fd = epoll_create1(EPOLL_CLOEXEC);
#endif
    return p->fd < 0 ? -1 : 0;
}

static void ngi_poller_close(ngi_poller *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
}

static void ngi_poller_free(ngi_poller *p)
{
    ngi_poller_close(p);
    free(p->events);
    p->events = NULL;
}

#ifdef NGI_USE_KQUEUE
/* One change, alone, so that a harmless failure of a delete stays apart. */
static int ngi_kevent_change(int kq, int fd, short filter, unsigned short flags,
                             uint64_t token)
{
    struct kevent change;
    EV_SET(&change, (uintptr_t)fd, filter, flags, 0, 0,
           (void *)(uintptr_t)token);
    if (kevent(kq, &change, 1, NULL, 0, NULL) < 0) {
        if ((flags & EV_DELETE) && (errno == ENOENT || errno == EBADF))
            return 0;
        return -1;
    }
    return 0;
}

/* Change the filters of fd from `old` to `events` (NGI_IN, NGI_OUT,
 * NGI_ET), touching only those that change.  NGI_UNKNOWN as `old` (or a
 * change of NGI_ET) replaces every filter: deleted, then added again,
 * since libkqueue ignores an EV_ADD that would only change the token (and
 * fails it without an errno); a fresh filter reports the current
 * readiness anyway. */
static int ngi_kqueue_set(int kq, int fd, uint32_t old, uint32_t events,
                          uint64_t token)
{
    unsigned short mode = EV_ADD | ((events & NGI_ET) ? EV_CLEAR : 0);
    short filters[2] = {EVFILT_READ, EVFILT_WRITE};
    uint32_t bits[2] = {NGI_IN, NGI_OUT};
    int replace = old == NGI_UNKNOWN || ((old ^ events) & NGI_ET);
    int i;
    for (i = 0; i < 2; i++) {
        int was = (old & bits[i]) != 0, now = (events & bits[i]) != 0;
        if (was && (!now || replace)
                && ngi_kevent_change(kq, fd, filters[i], EV_DELETE, 0) < 0)
            return -1;
        if (now && (!was || replace)
                && ngi_kevent_change(kq, fd, filters[i], mode, token) < 0)
            return -1;
    }
    return 0;
}
#endif

#ifndef NGI_USE_KQUEUE
static int ngi_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}
#endif

/* Watch fd for events (not watched before), reported with token. */
static int ngi_poller_add(ngi_poller *p, int fd, uint32_t events, uint64_t token)
{
#ifdef NGI_USE_KQUEUE
    return ngi_kqueue_set(p->fd, fd, 0, events, token);
#else
    return ngi_epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, events, token);
#endif
}

/* Watch fd for events instead of old (NGI_UNKNOWN if not known). */
static int ngi_poller_modify(ngi_poller *p, int fd, uint32_t old, uint32_t events,
                             uint64_t token)
{
#ifdef NGI_USE_KQUEUE
    return ngi_kqueue_set(p->fd, fd, old, events, token);
#else
    (void)old;
    return ngi_epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, events, token);
#endif
}

static int ngi_poller_remove(ngi_poller *p, int fd)
{
#ifdef NGI_USE_KQUEUE
    return ngi_kqueue_set(p->fd, fd, NGI_IN | NGI_OUT, 0, 0);
#else
    return ngi_epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, 0, 0);
#endif
}

/* Wait up to timeout_ms (-1: forever); the number of events, or -1. */
static int ngi_poller_wait(ngi_poller *p, int timeout_ms)
{
#ifdef NGI_USE_KQUEUE
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    return kevent(p->fd, NULL, 0, p->events, p->capacity, tsp);
#else
    return epoll_wait(p->fd, p->events, p->capacity, timeout_ms);
#endif
}

static inline uint64_t ngi_event_token(const ngi_poller *p, int i)
{
#ifdef NGI_USE_KQUEUE
    return (uint64_t)(uintptr_t)p->events[i].udata;
#else
    return p->events[i].data.u64;
#endif
}

/* The i-th event in the loop's vocabulary. */
static inline uint32_t ngi_event_bits(const ngi_poller *p, int i)
{
#ifdef NGI_USE_KQUEUE
    const struct kevent *ev = &p->events[i];
    uint32_t bits = 0;
    if (ev->filter == EVFILT_READ)
        bits = NGI_IN | ((ev->flags & EV_EOF) ? NGI_RDHUP : 0);
    else if (ev->filter == EVFILT_WRITE)
        bits = NGI_OUT | ((ev->flags & EV_EOF) ? NGI_HUP : 0);
    else
        bits = NGI_IN;  /* the waker's user event */
    if (ev->flags & EV_ERROR)
        bits |= NGI_ERR;
    return bits;
#else
    return p->events[i].events;
#endif
}

/* The errno the i-th event carries, or 0.  kqueue reports a socket's
 * error with EV_EOF (in fflags; libkqueue has read, and so cleared,
 * SO_ERROR to get it) or EV_ERROR (in data); with epoll the error waits
 * in the socket for the next call to meet it. */
static inline int ngi_event_error(const ngi_poller *p, int i)
{
#ifdef NGI_USE_KQUEUE
    const struct kevent *ev = &p->events[i];
    if (ev->flags & EV_ERROR)
        return (int)ev->data;
    if (ev->flags & EV_EOF)
        return (int)ev->fflags;
    return 0;
#else
    (void)p;
    (void)i;
    return 0;
#endif
}

/* -- the waker ------------------------------------------------------------
 * Any thread sets it; the poller reports it as token 0.  An eventfd on
 * Linux; with kqueue, the user event where EVFILT_USER exists (no
 * descriptor at all), else a pipe.  A waker made without a poller (for
 * tests) is always a descriptor. */

typedef struct {
    int rfd;  /* what the poller watches (eventfd, or the pipe's read end) */
    int wfd;  /* what wake() writes (the same eventfd, or the write end) */
    int kq;   /* the kqueue of a user-event waker, else -1 */
} ngi_waker;

#ifdef NGI_USE_KQUEUE
static int ngi_pipe_nonblocking(int fds[2])
{
    int i;
    if (pipe(fds) < 0)
        return -1;
    for (i = 0; i < 2; i++) {
        if (ngi_set_cloexec(fds[i]) < 0 || ngi_set_nonblocking(fds[i]) < 0) {
            int err = errno;
            close(fds[0]);
            close(fds[1]);
            errno = err;
            return -1;
        }
    }
    return 0;
}

#endif

/* A waker, registered with p as token 0 when p is not NULL. */
static int ngi_waker_open(ngi_waker *w, ngi_poller *p)
{
    w->rfd = w->wfd = w->kq = -1;
#if defined(NGI_USE_KQUEUE) && defined(EVFILT_USER)
    if (p != NULL) {
        if (ngi_kevent_change(p->fd, 0, EVFILT_USER, EV_ADD | EV_CLEAR, 0) < 0)
            return -1;
        w->kq = p->fd;
        return 0;
    }
#endif
#ifdef NGI_USE_KQUEUE
    {
        int fds[2];
        if (ngi_pipe_nonblocking(fds) < 0)
            return -1;
        w->rfd = fds[0];
        w->wfd = fds[1];
    }
#else
    w->rfd = w->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->rfd < 0)
        return -1;
#endif
    if (p != NULL && ngi_poller_add(p, w->rfd, NGI_IN, 0) < 0) {
        int err = errno;
        close(w->rfd);
        if (w->wfd != w->rfd)
            close(w->wfd);
        w->rfd = w->wfd = -1;
        errno = err;
        return -1;
    }
    return 0;
}

/* Set the waker; safe from any thread, never blocks.  A full pipe or a
 * saturated eventfd is readable already. */
static void ngi_waker_wake(ngi_waker *w)
{
#if defined(NGI_USE_KQUEUE) && defined(EVFILT_USER)
    if (w->kq >= 0) {
        struct kevent trigger;
        EV_SET(&trigger, 0, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        (void)kevent(w->kq, &trigger, 1, NULL, 0, NULL);
        return;
    }
#endif
    if (w->wfd >= 0) {
#ifdef NGI_USE_KQUEUE
        char one = 1;
#else
        uint64_t one = 1;
#endif
        ssize_t n = write(w->wfd, &one, sizeof(one));
        (void)n;
    }
}

/* Reset the waker; 1 if it had been set. */
static int ngi_waker_drain(ngi_waker *w)
{
    if (w->rfd < 0)
        return 0;  /* a user event clears itself (EV_CLEAR) */
#ifdef NGI_USE_KQUEUE
    {
        char buf[256];
        int woken = 0;
        while (read(w->rfd, buf, sizeof(buf)) > 0)
            woken = 1;
        return woken;
    }
#else
    {
        uint64_t value = 0;
        if (read(w->rfd, &value, sizeof(value)) < 0)
            return 0;
        return value ? 1 : 0;
    }
#endif
}

static void ngi_waker_close(ngi_waker *w)
{
    if (w->rfd >= 0)
        close(w->rfd);
    if (w->wfd >= 0 && w->wfd != w->rfd)
        close(w->wfd);
    w->rfd = w->wfd = w->kq = -1;
}

/* -- sockets ---------------------------------------------------------------- */

/* What every socket the core adopts gets: no SIGPIPE where sends cannot
 * ask for that themselves. */
static void ngi_socket_setup(int fd)
{
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#else
    (void)fd;
#endif
}

/* accept(), the new descriptor non-blocking and close-on-exec. */
static int ngi_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
#ifdef NGI_LINUX_SOCKETS
    return accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int conn = accept(fd, addr, addrlen);
    if (conn < 0)
        return -1;
    if (ngi_set_cloexec(conn) < 0 || ngi_set_nonblocking(conn) < 0) {
        int err = errno;
        close(conn);
        errno = err;
        return -1;
    }
    return conn;
#endif
}

/* Bytes received and not yet read, or -1 if unknown. */
static int ngi_unread(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) == 0)  /* Linux's SIOCINQ */
        return n;
    return -1;
}

/* Bytes sent and not yet acknowledged by the peer (or not yet sent), or
 * -1 where the platform cannot say: macOS SO_NWRITE, FreeBSD FIONWRITE,
 * Linux TIOCOUTQ (its SIOCOUTQ). */
static int ngi_unsent(int fd)
{
    int n = 0;
#if defined(SO_NWRITE)
    socklen_t length = sizeof(n);
    if (getsockopt(fd, SOL_SOCKET, SO_NWRITE, &n, &length) == 0)
        return n;
#elif defined(FIONWRITE)
    if (ioctl(fd, FIONWRITE, &n) == 0)
        return n;
#elif defined(TIOCOUTQ)
    if (ioctl(fd, TIOCOUTQ, &n) == 0)
        return n;
#endif
    (void)fd;
    return -1;
}

#endif /* NGI_PLATFORM_H */
