/* The reference TLS echo server: plain C over epoll and non-blocking
 * OpenSSL, the floor the Python TLS servers are measured against.
 *
 *   tls_echo_server CERT_PEM KEY_PEM [PORT]
 *
 * Listens for TLS over TCP on 127.0.0.1:PORT (0 or absent: a free port),
 * prints "ready TCP_PORT 0" (no UDP here; the 0 keeps the line the shape
 * the plaintext servers print) and echoes until killed.
 *
 * One thread, level-triggered epoll, each SSL object on its socket
 * (SSL_set_fd), OpenSSL's defaults for a server (TLS 1.2 and 1.3, default
 * ciphers and groups, TLS 1.3 session tickets as Python's ssl module also
 * sends them): what a C programmer writing an echo server would do, with
 * no tuning a Python server could not have.
 *
 * Per connection: the handshake runs as the socket allows; once done,
 * records are read and decrypted until what one recv() brought is used up
 * (OpenSSL reads ahead: one recv() takes as many records as have come, as
 * the Python servers' memory BIOs do) or 256 KiB are gathered, and what was
 * read is written back in one SSL_write (one TLS record per 16 KiB).  What
 * the socket does not take at once is kept, and the connection is not read
 * again until it has gone out.  A close_notify from the peer is answered
 * with ours, then the socket is closed.
 *
 * Two ways the Python servers batch were tried here and measured slower
 * (server CPU per MiB of tls-stream-8, 5 to 15% more): writing the records
 * into a memory BIO to send them in one send() (a copy more, and OpenSSL
 * clears a mem BIO's whole buffer on reset), and a 256 KiB read-ahead
 * buffer instead of OpenSSL's 16 KiB one (more cache misses).
 *
 * With NGI_BENCH_PARENT=PID in the environment (the runner sets it), the
 * process dies with that parent, even if the parent is killed.
 *
 * Build: cc -O2 -o tls_echo_server tls_echo_server.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSIZE (256 * 1024)
#define MAX_EVENTS 512

typedef struct {
    SSL *ssl;          /* NULL: no connection on this descriptor */
    int established;   /* the handshake is done */
    char *data;        /* plaintext SSL_write has not taken yet */
    size_t size;
    uint32_t events;   /* what epoll watches for it now */
} conn_t;

static conn_t *conns;  /* indexed by descriptor */
static int ep, listen_fd;
static SSL_CTX *ctx;
static char buf[BUFSIZE];

static void watch(int op, int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
    conns[fd].events = events;
}

static void want(int fd, uint32_t events) {
    if (conns[fd].events != events) watch(EPOLL_CTL_MOD, fd, events);
}

static void drop(int fd) {
    conn_t *c = &conns[fd];
    SSL_free(c->ssl);
    free(c->data);
    memset(c, 0, sizeof *c);
    ERR_clear_error();  /* a failure here must not be seen by the next call */
    close(fd);
}

/* Watch for what an SSL call waits for, given its SSL_get_error() (taken
 * at once: a later call changes it); 0 if it only waits, -1 if the
 * connection is over (closed, failed). */
static int wait_for(int fd, int error) {
    switch (error) {
    case SSL_ERROR_WANT_READ: want(fd, EPOLLIN); return 0;
    case SSL_ERROR_WANT_WRITE: want(fd, EPOLLOUT); return 0;
    case SSL_ERROR_ZERO_RETURN:  /* the peer's close_notify: send ours */
        SSL_shutdown(conns[fd].ssl);
        return -1;
    default: return -1;
    }
}

/* Write data[0:size]; keep what OpenSSL could not send yet.  Returns 1 if
 * all went out, 0 if some waits (we then stop reading), -1 on failure. */
static int write_or_keep(int fd, const char *data, size_t size) {
    conn_t *c = &conns[fd];
    while (size > 0) {
        int n = SSL_write(c->ssl, data, size > INT32_MAX ? INT32_MAX : (int)size);
        if (n <= 0) {
            if (SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_WRITE) return -1;
            if (c->data != data) {  /* keep a copy; retried from there */
                char *copy = malloc(size);
                memcpy(copy, data, size);
                free(c->data);
                c->data = copy;
            }
            c->size = size;
            want(fd, EPOLLOUT);
            return 0;
        }
        data += n;
        size -= n;
    }
    free(c->data);
    c->data = NULL;
    c->size = 0;
    want(fd, EPOLLIN);
    return 1;
}

/* Read and echo until OpenSSL needs the socket again. */
static void echo(int fd) {
    conn_t *c = &conns[fd];
    for (;;) {
        size_t got = 0;
        int error = SSL_ERROR_NONE;
        while (got < BUFSIZE) {
            int ret = SSL_read(c->ssl, buf + got, BUFSIZE - got);
            if (ret <= 0) {
                error = SSL_get_error(c->ssl, ret);
                break;
            }
            got += ret;
            if (!SSL_has_pending(c->ssl)) break;  /* more: epoll will say */
        }
        if (got > 0) {
            int w = write_or_keep(fd, buf, got);
            if (w < 0) { drop(fd); return; }
            if (w == 0) return;  /* resumes in on_writable */
        }
        if (error != SSL_ERROR_NONE) {
            if (wait_for(fd, error) < 0) drop(fd);
            return;
        }
        if (!SSL_has_pending(c->ssl)) return;
    }
}

static void handshake(int fd) {
    conn_t *c = &conns[fd];
    int ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        c->established = 1;
        want(fd, EPOLLIN);
        echo(fd);  /* the client's first bytes may have come with its Finished */
    } else if (wait_for(fd, SSL_get_error(c->ssl, ret)) < 0) {
        drop(fd);
    }
}

static void on_event(int fd) {
    conn_t *c = &conns[fd];
    if (!c->established) {
        handshake(fd);
    } else if (c->data) {
        if (write_or_keep(fd, c->data, c->size) < 0) drop(fd);
        else if (!c->data) echo(fd);  /* out: read what waits in OpenSSL too */
    } else {
        if (c->events != EPOLLIN) want(fd, EPOLLIN);  /* a read wanted to write */
        echo(fd);
    }
}

static void on_accept(rlim_t limit) {
    for (int i = 0; i < 64; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK), one = 1;
        if (fd < 0) return;
        if ((rlim_t)fd >= limit) { close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = &conns[fd];
        c->ssl = SSL_new(ctx);
        if (!c->ssl) { ERR_clear_error(); close(fd); continue; }
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
        watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
}

static int bound_port(int fd) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: tls_echo_server CERT_PEM KEY_PEM [PORT]\n");
        return 2;
    }
    /* Started by the benchmark runner: die with it, even if it is killed. */
    const char *parent = getenv("NGI_BENCH_PARENT");
    if (parent) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != atoi(parent)) return 1;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;  /* as many connections as we may */
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    conns = calloc(rl.rlim_cur, sizeof *conns);
    signal(SIGPIPE, SIG_IGN);

    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "tls_echo_server: cannot load %s and %s:\n", argv[1], argv[2]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);  /* as Python's default */
    SSL_CTX_set_read_ahead(ctx, 1);  /* one recv() for all the records that came */
    /* A write that the socket refuses is retried from a copy, which may be
     * elsewhere in memory; what went out of it is returned at once. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(argc > 3 ? atoi(argv[3]) : 0)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listen_fd, 4096) < 0) {
        perror("tls_echo_server: tcp");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = listen_fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev);
    printf("ready %d 0\n", bound_port(listen_fd));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int k = 0; k < n; k++) {
            int fd = events[k].data.fd;
            if (fd == listen_fd) on_accept(rl.rlim_cur);
            else if (conns[fd].ssl) on_event(fd);
        }
    }
}
