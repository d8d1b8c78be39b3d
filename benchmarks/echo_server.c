/* The reference echo server: plain C over epoll, the floor the Python
 * servers are measured against.
 *
 *   echo_server [PORT]
 *
 * Listens for TCP on 127.0.0.1:PORT (0 or absent: a free port) and for UDP
 * on a free 127.0.0.1 port, prints "ready TCP_PORT UDP_PORT" and echoes
 * until killed.  TCP: whatever arrives is sent back; what the socket does
 * not take at once is kept, and the connection is not read again until it
 * has gone out.  UDP: each datagram goes back to its sender.
 *
 * With NGI_BENCH_PARENT=PID in the environment (the runner sets it), the
 * process dies with that parent, even if the parent is killed.
 *
 * Per connection it keeps nothing until a send is partial, so its memory
 * per idle connection is about nothing: the kernel's share is not in RSS.
 *
 * Build: cc -O2 -o echo_server echo_server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

typedef struct {   /* bytes a connection's socket has not taken yet */
    char *data;
    size_t size, sent;
} pending_t;

static pending_t *pending;  /* indexed by descriptor */
static int ep, listen_fd, udp_fd;
static char buf[BUFSIZE];

static void watch(int op, int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static void drop(int fd) {
    free(pending[fd].data);
    pending[fd].data = NULL;
    close(fd);
}

/* Send data[0:size]; keep what the socket refuses.  0, or -1 if it failed. */
static int send_or_keep(int fd, const char *data, size_t size) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) return -1;
        n = 0;
    }
    if ((size_t)n < size) {
        pending_t *p = &pending[fd];
        p->data = malloc(size - n);
        memcpy(p->data, data + n, size - n);
        p->size = size - n;
        p->sent = 0;
        watch(EPOLL_CTL_MOD, fd, EPOLLOUT);  /* stop reading until it is out */
    }
    return 0;
}

static void on_readable(int fd) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0 || send_or_keep(fd, buf, n) < 0) drop(fd);
}

static void on_writable(int fd) {
    pending_t *p = &pending[fd];
    ssize_t n = send(fd, p->data + p->sent, p->size - p->sent, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) drop(fd);
        return;
    }
    p->sent += n;
    if (p->sent == p->size) {
        free(p->data);
        p->data = NULL;
        watch(EPOLL_CTL_MOD, fd, EPOLLIN);
    }
}

static void on_accept(rlim_t limit) {
    for (int i = 0; i < 64; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK), one = 1;
        if (fd < 0) return;
        if ((rlim_t)fd >= limit) { close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
}

static void on_datagrams(void) {
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(udp_fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0) return;
        sendto(udp_fd, buf, n, 0, (struct sockaddr *)&from, len);
    }
}

static int bound_port(int fd) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

int main(int argc, char **argv) {
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
    pending = calloc(rl.rlim_cur, sizeof *pending);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listen_fd, 4096) < 0) {
        perror("echo_server: tcp");
        return 1;
    }
    sa.sin_port = 0;
    udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (bind(udp_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("echo_server: udp");
        return 1;
    }
    ep = epoll_create1(0);
    watch(EPOLL_CTL_ADD, listen_fd, EPOLLIN);
    watch(EPOLL_CTL_ADD, udp_fd, EPOLLIN);
    printf("ready %d %d\n", bound_port(listen_fd), bound_port(udp_fd));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int k = 0; k < n; k++) {
            int fd = events[k].data.fd;
            if (fd == listen_fd) on_accept(rl.rlim_cur);
            else if (fd == udp_fd) on_datagrams();
            else if (pending[fd].data) on_writable(fd);
            else on_readable(fd);
        }
    }
}
