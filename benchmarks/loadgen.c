/* ngi's load generator: a C client, so the client is not the bottleneck.
 *
 *   loadgen pingpong HOST PORT CONNS SIZE SECONDS
 *
 * Each connection sends SIZE bytes, waits for all SIZE bytes to come back,
 * checks every byte, and starts again.  Prints one JSON object: requests,
 * seconds, errors, latency p50/p99 in microseconds.  An alarm ends the
 * process whatever the server does.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    size_t sent, received;
    uint32_t round;
    double started;
} conn_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Latency histogram: 1 us buckets up to 1 s, then one overflow bucket. */
#define BUCKETS 1000001
static uint64_t hist[BUCKETS + 1];

static void record(double seconds) {
    long us = (long)(seconds * 1e6);
    hist[us < BUCKETS ? us : BUCKETS]++;
}

static long percentile(uint64_t total, double p) {
    uint64_t want = (uint64_t)(total * p), seen = 0;
    for (long i = 0; i <= BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return i;
    }
    return BUCKETS;
}

static void fill(unsigned char *buf, size_t size, int c, uint32_t round) {
    for (size_t i = 0; i < size; i++) buf[i] = (unsigned char)(i * 7 + c * 13 + round);
}

static void on_alarm(int sig) { (void)sig; fprintf(stderr, "loadgen: timed out\n"); _exit(3); }

int main(int argc, char **argv) {
    if (argc != 7 || strcmp(argv[1], "pingpong") != 0) {
        fprintf(stderr, "usage: loadgen pingpong HOST PORT CONNS SIZE SECONDS\n");
        return 2;
    }
    const char *host = argv[2];
    int port = atoi(argv[3]), nconns = atoi(argv[4]);
    size_t size = (size_t)atol(argv[5]);
    double seconds = atof(argv[6]);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)seconds + 30);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int ep = epoll_create1(0);
    conn_t *conns = calloc(nconns, sizeof(conn_t));
    unsigned char **expect = calloc(nconns, sizeof(char *));
    unsigned char *rbuf = malloc(size > 65536 ? size : 65536);
    uint64_t requests = 0, errors = 0;

    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        expect[i] = malloc(size);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double start = now(), end = start + seconds;
    for (int i = 0; i < nconns; i++) {
        fill(expect[i], size, i, 0);
        conns[i].started = now();
        if (send(conns[i].fd, expect[i], size, 0) != (ssize_t)size) { perror("send"); return 1; }
    }
    struct epoll_event events[256];
    int open = nconns;
    while (open > 0) {
        int n = epoll_wait(ep, events, 256, 1000);
        for (int k = 0; k < n; k++) {
            int i = events[k].data.u32;
            conn_t *c = &conns[i];
            ssize_t r = recv(c->fd, rbuf, size - c->received, MSG_DONTWAIT);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                errors++; close(c->fd); c->fd = -1; open--; continue;
            }
            if (memcmp(rbuf, expect[i] + c->received, r) != 0) errors++;
            c->received += r;
            if (c->received < size) continue;
            double t = now();
            record(t - c->started);
            requests++;
            if (t >= end) { close(c->fd); c->fd = -1; open--; continue; }
            c->received = 0;
            c->round++;
            fill(expect[i], size, i, c->round);
            c->started = t;
            size_t off = 0;
            while (off < size) {   /* blocking socket: send all */
                ssize_t w = send(c->fd, expect[i] + off, size - off, 0);
                if (w < 0) { errors++; break; }
                off += w;
            }
        }
    }
    double elapsed = now() - start;
    printf("{\"requests\": %llu, \"seconds\": %.4f, \"errors\": %llu, "
           "\"p50_us\": %ld, \"p99_us\": %ld}\n",
           (unsigned long long)requests, elapsed, (unsigned long long)errors,
           percentile(requests, 0.5), percentile(requests, 0.99));
    return errors ? 1 : 0;
}
