/* ngi's load generator: a C client, so the client does not limit the server
 * on a 2-core machine.  One mode per run:
 *
 *   loadgen pingpong HOST PORT CONNS SIZE SECONDS
 *       CONNS connections; each sends SIZE bytes, waits for all of them to
 *       come back (checking every byte) and starts again.  ops = requests.
 *   loadgen lines HOST PORT CONNS RECORDS SECONDS
 *       as pingpong, but each request is a batch of RECORDS lines of 64
 *       bytes (63 bytes with no newline, then a newline), sent in one
 *       send(); the reply must be the same bytes (the server echoes each
 *       line with its newline), checked byte by byte.  ops = records
 *       (lines); the latencies are of whole batches.
 *   loadgen sized HOST PORT CONNS RECORDS SECONDS
 *       the same with length-prefixed records: 4 bytes big-endian (the
 *       length, 64), then 64 bytes; each echoed with its prefix.
 *       ops = records.
 *   loadgen stream HOST PORT CONNS SECONDS
 *       CONNS connections each send continuously (at most WINDOW bytes not
 *       yet echoed) and read the echo back, checking every byte.
 *       ops = bytes echoed.
 *   loadgen connect HOST PORT CONCURRENCY SECONDS
 *       CONCURRENCY at a time: connect, send 1 byte, read it back, close.
 *       ops = connections.
 *   loadgen idle HOST PORT CONNS HOLD_SECONDS
 *       Open CONNS connections (each echoes 1 byte once, so the server has
 *       surely accepted it), report, then hold them open until stdin closes
 *       or HOLD_SECONDS pass.  ops = connections established.
 *   loadgen udp HOST PORT FLOWS SIZE SECONDS
 *       FLOWS sockets, each with one SIZE-byte datagram outstanding; a reply
 *       is checked and the next request sent.  A request unanswered after
 *       UDP_TIMEOUT seconds is counted as lost and replaced.  ops = replies.
 *
 * Built with -DNGI_TLS (and -lssl -lcrypto), the same modes over TLS
 * (OpenSSL; TLS 1.2 or 1.3 as the server agrees, default ciphers; the
 * server's certificate is not verified, this being a benchmark):
 *
 *   loadgen tls-pingpong HOST PORT CONNS SIZE SECONDS
 *       as pingpong, over CONNS TLS connections set up before the run.
 *   loadgen tls-stream HOST PORT CONNS SECONDS
 *       as stream, over TLS (one record per 16 KiB written).
 *   loadgen tls-handshake HOST PORT CONCURRENCY SECONDS
 *       CONCURRENCY at a time: connect, a full handshake, 1 byte sent and
 *       read back, close_notify, close.  No session is ever resumed (no
 *       session cache, no tickets asked for, no session set): every
 *       handshake costs the server its private-key operation.
 *       ops = handshakes.
 *
 * Output, one JSON object per line on stdout:
 *   {"phase": "measuring"}   when the timed part starts (after connecting
 *                            and a short warm-up), so the caller can sample
 *                            the server's CPU time then;
 *   {"mode": ..., "ops": ..., "seconds": ..., "bytes": ..., "errors": ...,
 *    "lost": ..., "p50_us": ..., "p99_us": ..., "client_cpu": ...}
 *                            when it ends (idle: when all are established);
 *                            the TLS modes add "tls": the protocol version
 *                            and cipher of their first connection.
 * client_cpu is this process's CPU seconds while measuring: close to
 * "seconds" means the client, not the server, was the limit.
 *
 * TCP sockets are bound to source addresses 127.0.0.2 .. 127.0.0.65 in turn
 * (with IP_BIND_ADDRESS_NO_PORT) when HOST is a 127.x address, so that
 * TIME_WAIT on one source address does not exhaust the ephemeral ports.
 *
 * An alarm ends the process (exit status 3) whatever the server does.
 * With NGI_BENCH_PARENT=PID in the environment (the runner sets it), the
 * process dies with that parent, even if the parent is killed.
 *
 * Exit status: 0 all good, 1 errors (wrong bytes, failed connections),
 * 2 usage, 3 timed out.
 *
 * Build: cc -O2 -o loadgen loadgen.c
 *   or:  cc -O2 -DNGI_TLS -o loadgen_tls loadgen.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef NGI_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_MESSAGE (256 * 1024)  /* largest SIZE, and the stream read size */
#define STREAM_CHUNK (64 * 1024)  /* bytes per send() when streaming */
#define WINDOW (256 * 1024)       /* stream bytes sent but not yet echoed */
#define SOURCES 64                /* 127.0.0.2 .. 127.0.0.65 */
#define UDP_TIMEOUT 0.2
#define MAX_EVENTS 512

/* ---- time, latency histogram, results ---------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* 1 us buckets up to 1 s, then one overflow bucket. */
#define BUCKETS 1000000
static uint64_t hist[BUCKETS + 1];
static uint64_t samples;

static void record(double seconds) {
    long us = (long)(seconds * 1e6);
    if (us < 0) us = 0;
    hist[us < BUCKETS ? us : BUCKETS]++;
    samples++;
}

static long percentile(double p) {
    uint64_t want = (uint64_t)(samples * p), seen = 0;
    for (long i = 0; i <= BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return i;
    }
    return BUCKETS;
}

static const char *mode_name;
static uint64_t ops, bytes_done, errors, lost;
static double measure_start, cpu_start;
static int measuring;
static char tls_info[160];  /* TLS modes: "VERSION CIPHER" of a connection */

/* Start the timed part: forget the warm-up, tell the caller. */
static void start_measuring(void) {
    memset(hist, 0, sizeof hist);
    samples = ops = bytes_done = lost = 0;
    measuring = 1;
    measure_start = now();
    cpu_start = cpu_seconds();
    printf("{\"phase\": \"measuring\"}\n");
    fflush(stdout);
}

static double warm_end, run_end;  /* the measured window, after a warm-up */

/* Plan a run: a warm-up of a tenth of it (at most 0.5 s), then `seconds`
 * measured.  Returns the time now. */
static double plan_window(double seconds) {
    double t = now();
    warm_end = t + (seconds * 0.1 < 0.5 ? seconds * 0.1 : 0.5);
    run_end = warm_end + seconds;
    return t;
}


static int ep;  /* the epoll descriptor every mode uses */

/* Wait for events; start measuring once the warm-up is over. */
static int next_events(struct epoll_event *events, int timeout_ms, double *t) {
    int n = epoll_wait(ep, events, MAX_EVENTS, timeout_ms);
    *t = now();
    if (!measuring && *t >= warm_end) start_measuring();
    return n;
}

static void report(void) {
    double seconds = now() - measure_start, cpu = cpu_seconds() - cpu_start;
    printf("{\"mode\": \"%s\", \"ops\": %llu, \"seconds\": %.6f, \"bytes\": %llu, "
           "\"errors\": %llu, \"lost\": %llu, ",
           mode_name, (unsigned long long)ops, seconds,
           (unsigned long long)bytes_done, (unsigned long long)errors,
           (unsigned long long)lost);
    if (samples)
        printf("\"p50_us\": %ld, \"p99_us\": %ld, ", percentile(0.5), percentile(0.99));
    else
        printf("\"p50_us\": null, \"p99_us\": null, ");
    if (tls_info[0]) printf("\"tls\": \"%s\", ", tls_info);
    printf("\"client_cpu\": %.6f}\n", cpu);
    fflush(stdout);
}

/* ---- the byte pattern every mode sends and checks ---------------------- */

/* A pseudo-random pattern with a prime period: data at stream offset k is
 * pattern[k % PERIOD], and the buffer runs MAX_MESSAGE bytes past the
 * period so any message of up to MAX_MESSAGE bytes is one contiguous slice.
 * A lost, repeated or reordered piece of the echo shows up in memcmp. */
#define PERIOD 65521
static unsigned char pattern[PERIOD + MAX_MESSAGE];

static void make_pattern(void) {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < PERIOD; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }
    for (size_t i = PERIOD; i < sizeof pattern; i++) pattern[i] = pattern[i - PERIOD];
}

static const unsigned char *slice(uint64_t offset) { return pattern + offset % PERIOD; }

/* ---- sockets ----------------------------------------------------------- */

static struct sockaddr_in server;
static int spread_sources;  /* HOST is loopback: bind to varied sources */
static unsigned source_turn;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "loadgen: timed out\n";
    if (write(2, msg, sizeof msg - 1)) {}
    _exit(3);
}

/* A TCP socket, bound to the next loopback source address, connecting.
 * Returns the descriptor, or -1 (counted as an error) if it failed at once. */
static int open_tcp(int blocking) {
    int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0), one = 1;
    if (fd < 0) { perror("loadgen: socket"); errors++; return -1; }
    if (spread_sources) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + source_turn++ % SOURCES);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            perror("loadgen: bind"); close(fd); errors++; return -1;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) {
        perror("loadgen: connect"); close(fd); errors++; return -1;
    }
    return fd;
}

static void watch(int op, int fd, uint32_t events, uint32_t index) {
    struct epoll_event ev = {.events = events, .data.u32 = index};
    epoll_ctl(ep, op, fd, &ev);
}

static void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- ping-pong --------------------------------------------------------- */

typedef struct {
    int fd;
    const unsigned char *message;  /* the request in flight */
    unsigned char *batch;          /* lines, sized: where it is built */
    size_t sent, received;
    uint32_t round;
    int want_write;
    double started;
} pp_conn;

static size_t pp_size;  /* bytes per request (a whole batch when framed) */

/* Framed modes: a request is a batch of records, sent in one send() and
 * echoed record by record; the reply is checked as the same bytes. */
enum { UNFRAMED, LINES, SIZED };
static int framing = UNFRAMED;
static unsigned batch_records = 1;  /* records per request: ops per reply */

#define RECORD 64         /* bytes of a record (lines: its newline included) */
#define MAX_RECORDS 1024  /* most records per batch */
#define PREFIX 4          /* sized: the big-endian length before each record */

static size_t record_bytes(void) { return RECORD + (framing == SIZED ? PREFIX : 0); }

/* Build a batch of records from the pattern at `offset`.  lines: 63 bytes
 * with no newline (a 0x0a of the pattern becomes 0x8a), then a newline.
 * sized: the length 64 as 4 bytes big-endian, then 64 bytes of the pattern. */
static void make_batch(unsigned char *out, uint64_t offset) {
    const unsigned char *from = slice(offset);
    for (unsigned r = 0; r < batch_records; r++) {
        if (framing == LINES) {
            for (int k = 0; k < RECORD - 1; k++) {
                unsigned char b = *from++;
                *out++ = b == '\n' ? (unsigned char)('\n' | 0x80) : b;
            }
            from++;
            *out++ = '\n';
        } else {
            *out++ = 0; *out++ = 0; *out++ = RECORD >> 8; *out++ = RECORD & 0xff;
            memcpy(out, from, RECORD);
            out += RECORD;
            from += RECORD;
        }
    }
}

static void pp_send(pp_conn *c, uint32_t i) {
    while (c->sent < pp_size) {
        ssize_t n = send(c->fd, c->message + c->sent, pp_size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) break;
            errors++;
            return;
        }
        c->sent += n;
    }
    int want = c->sent < pp_size;
    if (want != c->want_write) {
        watch(EPOLL_CTL_MOD, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), i);
        c->want_write = want;
    }
}

static void pp_start(pp_conn *c, uint32_t i, double t) {
    uint64_t offset = (uint64_t)i * 977 + (uint64_t)c->round * 131;
    if (c->batch) {
        make_batch(c->batch, offset);
        c->message = c->batch;
    } else {
        c->message = slice(offset);
    }
    c->round++;
    c->sent = c->received = 0;
    c->started = t;
    pp_send(c, i);
}

static int pingpong(int nconns, size_t size, double seconds) {
    static unsigned char rbuf[MAX_MESSAGE];
    pp_conn *conns = calloc(nconns, sizeof *conns);
    pp_size = size;
    for (int i = 0; i < nconns; i++) {
        if (framing != UNFRAMED && !(conns[i].batch = malloc(size))) {
            perror("loadgen: malloc");
            return 1;
        }
        conns[i].fd = open_tcp(1);
        if (conns[i].fd < 0) return 1;
        set_nonblocking(conns[i].fd);
        watch(EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, i);
    }
    double t = plan_window(seconds);
    for (int i = 0; i < nconns; i++) pp_start(&conns[i], i, t);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            pp_conn *c = &conns[i];
            if (c->fd < 0) continue;
            if (events[k].events & EPOLLOUT) pp_send(c, i);
            if (!(events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0 || c->received + r > size ||
                memcmp(rbuf, c->message + c->received, r) != 0) {
                errors++;  /* closed, failed, or wrong bytes: drop it */
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->received += r;
            if (c->received < size) continue;
            record(t - c->started);
            ops += batch_records;
            bytes_done += size;
            pp_start(c, i, t);
        }
    }
    report();
    return errors != 0;
}

/* lines and sized: ping-pong of batches of `records` records. */
static int framed(int nconns, unsigned records, double seconds) {
    framing = !strcmp(mode_name, "lines") ? LINES : SIZED;
    batch_records = records;
    return pingpong(nconns, records * record_bytes(), seconds);
}

/* ---- streaming --------------------------------------------------------- */

typedef struct {
    int fd;
    uint64_t sent, received, base;
    int want_write;
} st_conn;

static void st_send(st_conn *c, uint32_t i) {
    while (c->sent - c->received < WINDOW) {
        size_t room = WINDOW - (c->sent - c->received);
        ssize_t n = send(c->fd, slice(c->base + c->sent),
                         room < STREAM_CHUNK ? room : STREAM_CHUNK, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) break;
            errors++;
            return;
        }
        c->sent += n;
    }
    int want = c->sent - c->received < WINDOW;  /* blocked by the socket */
    if (want != c->want_write) {
        watch(EPOLL_CTL_MOD, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), i);
        c->want_write = want;
    }
}

static int stream(int nconns, double seconds) {
    static unsigned char rbuf[MAX_MESSAGE];
    st_conn *conns = calloc(nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = open_tcp(1);
        if (conns[i].fd < 0) return 1;
        set_nonblocking(conns[i].fd);
        conns[i].base = (uint64_t)i * 7919;
        watch(EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, i);
    }
    double t = plan_window(seconds);
    for (int i = 0; i < nconns; i++) st_send(&conns[i], i);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            st_conn *c = &conns[i];
            if (c->fd < 0) continue;
            if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
                if (r < 0 && errno == EAGAIN) continue;
                if (r <= 0 || c->received + r > c->sent ||
                    memcmp(rbuf, slice(c->base + c->received), r) != 0) {
                    errors++;
                    close(c->fd);
                    c->fd = -1;
                    continue;
                }
                c->received += r;
                bytes_done += r;
            }
            st_send(c, i);
        }
    }
    ops = bytes_done;
    report();
    return errors != 0;
}

/* ---- connect rate and idle connections --------------------------------- */

/* Both open connections that echo one byte; connect closes each after its
 * echo and opens another, idle keeps them. */
typedef struct {
    int fd;
    int sent;  /* connected and the byte sent: now waiting for its echo */
    double started;
} cn_conn;

static cn_conn *cn;

static void cn_open(uint32_t i, double t) {
    cn[i].fd = open_tcp(0);
    cn[i].sent = 0;
    cn[i].started = t;
    if (cn[i].fd >= 0) watch(EPOLL_CTL_ADD, cn[i].fd, EPOLLOUT, i);
}

/* Handle one event; returns 1 when the connection has just echoed its byte,
 * -1 when it failed (then it is closed). */
static int cn_event(uint32_t i) {
    cn_conn *c = &cn[i];
    unsigned char byte = (unsigned char)(i * 31 + 7), got;
    if (!c->sent) {  /* connected (or failed to) */
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || send(c->fd, &byte, 1, MSG_NOSIGNAL) != 1) goto failed;
        c->sent = 1;
        watch(EPOLL_CTL_MOD, c->fd, EPOLLIN, i);
        return 0;
    }
    ssize_t r = recv(c->fd, &got, 1, 0);
    if (r < 0 && errno == EAGAIN) return 0;
    if (r != 1 || got != byte) goto failed;
    watch(EPOLL_CTL_DEL, c->fd, 0, i);
    return 1;
failed:
    errors++;
    close(c->fd);
    c->fd = -1;
    return -1;
}

static int connect_rate(int concurrency, double seconds) {
    cn = calloc(concurrency, sizeof *cn);
    double t = plan_window(seconds);
    for (int i = 0; i < concurrency; i++) cn_open(i, t);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end && errors < 1000) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            int done = cn_event(i);
            if (done == 0) continue;
            if (done == 1) {
                record(t - cn[i].started);
                ops++;
                close(cn[i].fd);
            }
            cn_open(i, t);
        }
        for (int i = 0; i < concurrency; i++)  /* failed at once: retry */
            if (cn[i].fd < 0 && errors < 1000) cn_open(i, t);
    }
    report();
    return errors != 0;
}

static int idle(int nconns, double hold) {
    const int window = 256;  /* handshakes in flight at once */
    cn = calloc(nconns, sizeof *cn);
    int opened = 0, established = 0, failed = 0, in_flight = 0;
    start_measuring();
    double t = now();
    struct epoll_event events[MAX_EVENTS];
    while (established + failed < nconns && errors < (uint64_t)nconns) {
        while (in_flight < window && opened < nconns) {
            cn_open(opened++, t);
            if (cn[opened - 1].fd >= 0) in_flight++; else failed++;
        }
        int n = epoll_wait(ep, events, MAX_EVENTS, 100);
        t = now();
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            int done = cn_event(i);
            if (done == 1) { record(t - cn[i].started); established++; in_flight--; }
            if (done == -1) {  /* one more try, then give that one up */
                cn_open(i, t);
                if (cn[i].fd < 0) { in_flight--; failed++; }
            }
        }
    }
    ops = established;
    report();
    /* Hold the connections until the caller closes our stdin, or time's up. */
    struct pollfd in = {.fd = 0, .events = POLLIN};
    double hold_end = now() + hold;
    char scratch[256];
    while (now() < hold_end) {
        int ms = (int)((hold_end - now()) * 1000) + 1;
        if (poll(&in, 1, ms) > 0 && read(0, scratch, sizeof scratch) <= 0) break;
    }
    return established < nconns;
}

/* ---- UDP request/response ---------------------------------------------- */

typedef struct {
    int fd;
    uint32_t seq;
    double sent_at;
    unsigned char message[MAX_MESSAGE];
} udp_flow;

static size_t udp_size;

static void udp_send(udp_flow *f, uint32_t i, double t) {
    f->seq++;
    memcpy(f->message, slice((uint64_t)i * 977 + (uint64_t)f->seq * 131), udp_size);
    memcpy(f->message, &i, 4);           /* flow and sequence number up front */
    memcpy(f->message + 4, &f->seq, 4);  /* (SIZE >= 8) */
    f->sent_at = t;
    if (sendto(f->fd, f->message, udp_size, 0, (struct sockaddr *)&server, sizeof server) < 0)
        lost++;  /* no buffer room: the request is lost, time it out */
}

static int udp(int nflows, size_t size, double seconds) {
    static unsigned char rbuf[MAX_MESSAGE];
    udp_flow *flows = calloc(nflows, sizeof *flows);
    udp_size = size;
    for (int i = 0; i < nflows; i++) {
        /* Unconnected on purpose: a reply from any port is accepted (an
         * implementation may answer from a socket other than the one asked). */
        flows[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in local = {.sin_family = AF_INET};
        local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(flows[i].fd, (struct sockaddr *)&local, sizeof local);
        watch(EPOLL_CTL_ADD, flows[i].fd, EPOLLIN, i);
    }
    double t = plan_window(seconds);
    for (int i = 0; i < nflows; i++) udp_send(&flows[i], i, t);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end) {
        int n = next_events(events, 10, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            udp_flow *f = &flows[i];
            ssize_t r;
            while ((r = recv(f->fd, rbuf, sizeof rbuf, 0)) >= 0) {
                uint32_t seq;
                memcpy(&seq, rbuf + 4, 4);
                if ((size_t)r == size && seq != f->seq) continue;  /* late reply */
                if ((size_t)r != size || memcmp(rbuf, f->message, size) != 0) {
                    errors++;
                    continue;
                }
                record(t - f->sent_at);
                ops++;
                bytes_done += size;
                udp_send(f, i, t);
            }
        }
        for (int i = 0; i < nflows; i++)
            if (t - flows[i].sent_at > UDP_TIMEOUT) { lost++; udp_send(&flows[i], i, t); }
    }
    report();
    return errors != 0;
}

/* ---- TLS (built with -DNGI_TLS) ---------------------------------------- */

#ifdef NGI_TLS
#define TLS_CHUNK (16 * 1024)  /* plaintext per SSL_write when streaming: one record */

static SSL_CTX *tls_ctx;

static int tls_setup(void) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) { ERR_print_errors_fp(stderr); return -1; }
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);  /* a benchmark */
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    /* Never resume: every handshake is a full one. */
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
    /* One recv() for all the records that came, not two per record. */
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

static SSL *tls_new(int fd) {
    SSL *ssl = SSL_new(tls_ctx);
    if (ssl) SSL_set_fd(ssl, fd);
    return ssl;
}

static void tls_note(SSL *ssl) {  /* what was agreed, once */
    if (!tls_info[0])
        snprintf(tls_info, sizeof tls_info, "%s %s", SSL_get_version(ssl),
                 SSL_get_cipher_name(ssl));
}

static void tls_close(int *fd, SSL **ssl) {
    if (*ssl) SSL_free(*ssl);
    *ssl = NULL;
    if (*fd >= 0) close(*fd);
    *fd = -1;
    ERR_clear_error();  /* a failure must not be seen by the next call */
}

/* Open a TLS connection before the run: blocking connect and handshake,
 * then non-blocking.  0, or -1 (counted) if it failed. */
static int tls_open_ready(int *fd, SSL **ssl) {
    *fd = open_tcp(1);
    if (*fd < 0) return -1;
    *ssl = tls_new(*fd);
    if (!*ssl || SSL_connect(*ssl) != 1) {
        fprintf(stderr, "loadgen: TLS handshake failed\n");
        ERR_print_errors_fp(stderr);
        errors++;
        tls_close(fd, ssl);
        return -1;
    }
    tls_note(*ssl);
    set_nonblocking(*fd);
    return 0;
}

/* What an SSL call that returned `ret` waits for: EPOLLIN or EPOLLOUT, or
 * 0 if the connection is over (closed or failed). */
static uint32_t tls_waits(SSL *ssl, int ret) {
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ: return EPOLLIN;
    case SSL_ERROR_WANT_WRITE: return EPOLLOUT;
    default: return 0;
    }
}

/* -- tls-pingpong -- */

typedef struct {
    int fd;
    SSL *ssl;
    const unsigned char *message;
    size_t sent, received;
    uint32_t round, events;
    int read_wants_write;
    double started;
} tp_conn;

static void tp_fail(tp_conn *c) {
    errors++;  /* closed, failed, or wrong bytes: drop it */
    tls_close(&c->fd, &c->ssl);
}

static void tp_watch(tp_conn *c, uint32_t i, uint32_t events) {
    if (events != c->events) {
        watch(EPOLL_CTL_MOD, c->fd, events, i);
        c->events = events;
    }
}

static void tp_send(tp_conn *c, uint32_t i) {
    uint32_t blocked = 0;
    while (c->sent < pp_size) {
        int n = SSL_write(c->ssl, c->message + c->sent, (int)(pp_size - c->sent));
        if (n <= 0) {
            if (!(blocked = tls_waits(c->ssl, n))) { tp_fail(c); return; }
            break;
        }
        c->sent += n;
    }
    tp_watch(c, i, EPOLLIN | (blocked == EPOLLOUT || c->read_wants_write ? EPOLLOUT : 0));
}

static void tp_start(tp_conn *c, uint32_t i, double t) {
    c->message = slice((uint64_t)i * 977 + (uint64_t)c->round * 131);
    c->round++;
    c->sent = c->received = 0;
    c->started = t;
    tp_send(c, i);
}

/* Read every record OpenSSL can give, checking it. */
static void tp_receive(tp_conn *c, uint32_t i, double t) {
    static unsigned char rbuf[MAX_MESSAGE];
    c->read_wants_write = 0;
    while (c->fd >= 0) {
        int r = SSL_read(c->ssl, rbuf, sizeof rbuf);
        if (r <= 0) {
            uint32_t waits = tls_waits(c->ssl, r);
            if (!waits) { tp_fail(c); return; }
            c->read_wants_write = waits == EPOLLOUT;
            if (c->read_wants_write) tp_watch(c, i, EPOLLIN | EPOLLOUT);
            return;
        }
        if (c->received + r > pp_size || memcmp(rbuf, c->message + c->received, r) != 0) {
            tp_fail(c);
            return;
        }
        c->received += r;
        if (c->received < pp_size) continue;
        record(t - c->started);
        ops++;
        bytes_done += pp_size;
        tp_start(c, i, t);
        if (c->fd < 0 || !SSL_has_pending(c->ssl)) return;  /* more: epoll says */
    }
}

static int tls_pingpong(int nconns, size_t size, double seconds) {
    tp_conn *conns = calloc(nconns, sizeof *conns);
    pp_size = size;
    for (int i = 0; i < nconns; i++) {
        if (tls_open_ready(&conns[i].fd, &conns[i].ssl) < 0) return 1;
        conns[i].events = EPOLLIN;
        watch(EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, i);
    }
    double t = plan_window(seconds);
    for (int i = 0; i < nconns; i++) tp_start(&conns[i], i, t);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            tp_conn *c = &conns[i];
            if (c->fd < 0) continue;
            if (events[k].events & EPOLLOUT) {
                if (c->sent < pp_size) tp_send(c, i);
                if (c->read_wants_write && c->fd >= 0) tp_receive(c, i, t);
            }
            if (c->fd >= 0 && events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                tp_receive(c, i, t);
        }
    }
    report();
    return errors != 0;
}

/* -- tls-stream -- */

typedef struct {
    int fd;
    SSL *ssl;
    uint64_t sent, received, base;
    size_t retry;   /* length of an SSL_write to repeat as it was */
    uint32_t events;
} ts_conn;

static void ts_fail(ts_conn *c) {
    errors++;
    tls_close(&c->fd, &c->ssl);
}

static void ts_send(ts_conn *c, uint32_t i) {
    uint32_t blocked = 0;
    while (c->retry || c->sent - c->received < WINDOW) {
        size_t room = WINDOW - (c->sent - c->received), len = c->retry;
        if (!len) len = room < TLS_CHUNK ? room : TLS_CHUNK;
        int n = SSL_write(c->ssl, slice(c->base + c->sent), (int)len);
        if (n <= 0) {
            if (!(blocked = tls_waits(c->ssl, n))) { ts_fail(c); return; }
            c->retry = len;  /* OpenSSL wants the same call again */
            break;
        }
        c->retry = 0;
        c->sent += n;
    }
    uint32_t events = EPOLLIN | (blocked == EPOLLOUT ? EPOLLOUT : 0);
    if (events != c->events) {
        watch(EPOLL_CTL_MOD, c->fd, events, i);
        c->events = events;
    }
}

static void ts_receive(ts_conn *c) {
    static unsigned char rbuf[MAX_MESSAGE];
    for (;;) {
        int r = SSL_read(c->ssl, rbuf, sizeof rbuf);
        if (r <= 0) {
            if (!tls_waits(c->ssl, r)) ts_fail(c);
            return;  /* wanting to write: the send that follows flushes */
        }
        if (c->received + r > c->sent ||
            memcmp(rbuf, slice(c->base + c->received), r) != 0) {
            ts_fail(c);
            return;
        }
        c->received += r;
        bytes_done += r;
        if (!SSL_has_pending(c->ssl)) return;  /* more: epoll says */
    }
}

static int tls_stream(int nconns, double seconds) {
    ts_conn *conns = calloc(nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        if (tls_open_ready(&conns[i].fd, &conns[i].ssl) < 0) return 1;
        conns[i].base = (uint64_t)i * 7919;
        conns[i].events = EPOLLIN;
        watch(EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, i);
    }
    double t = plan_window(seconds);
    for (int i = 0; i < nconns; i++) ts_send(&conns[i], i);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            ts_conn *c = &conns[i];
            if (c->fd < 0) continue;
            if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ts_receive(c);
            if (c->fd >= 0) ts_send(c, i);
        }
    }
    ops = bytes_done;
    report();
    return errors != 0;
}

/* -- tls-handshake -- */

enum { TH_CONNECTING, TH_HANDSHAKE, TH_SEND, TH_RECEIVE };

typedef struct {
    int fd;
    SSL *ssl;
    int state;
    double started;
} th_conn;

static th_conn *th;

static void th_open(uint32_t i, double t) {
    th[i].fd = open_tcp(0);
    th[i].ssl = NULL;
    th[i].state = TH_CONNECTING;
    th[i].started = t;
    if (th[i].fd >= 0) watch(EPOLL_CTL_ADD, th[i].fd, EPOLLOUT, i);
}

/* Move one connection on as far as it goes; 1 when its byte has come back
 * (it is then closed), -1 when it failed (closed too), 0 while it waits. */
static int th_event(uint32_t i) {
    th_conn *c = &th[i];
    unsigned char byte = (unsigned char)(i * 31 + 7), got[64];
    int ret;
    uint32_t waits;
    if (c->state == TH_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || !(c->ssl = tls_new(c->fd))) goto failed;
        SSL_set_connect_state(c->ssl);
        c->state = TH_HANDSHAKE;
    }
    if (c->state == TH_HANDSHAKE) {
        ret = SSL_do_handshake(c->ssl);
        if (ret != 1) goto wait;
        tls_note(c->ssl);
        c->state = TH_SEND;
    }
    if (c->state == TH_SEND) {
        ret = SSL_write(c->ssl, &byte, 1);
        if (ret != 1) goto wait;
        c->state = TH_RECEIVE;
    }
    for (;;) {  /* TH_RECEIVE: session tickets may come before the echo */
        ret = SSL_read(c->ssl, got, sizeof got);
        if (ret <= 0) goto wait;
        if (ret != 1 || got[0] != byte) goto failed;
        SSL_shutdown(c->ssl);  /* our close_notify; the peer's is not awaited */
        watch(EPOLL_CTL_DEL, c->fd, 0, i);
        tls_close(&c->fd, &c->ssl);
        return 1;
    }
wait:
    if (!(waits = tls_waits(c->ssl, ret))) goto failed;
    watch(EPOLL_CTL_MOD, c->fd, waits, i);
    return 0;
failed:
    errors++;
    tls_close(&c->fd, &c->ssl);
    return -1;
}

static int tls_handshake(int concurrency, double seconds) {
    th = calloc(concurrency, sizeof *th);
    double t = plan_window(seconds);
    for (int i = 0; i < concurrency; i++) th_open(i, t);
    struct epoll_event events[MAX_EVENTS];
    while (t < run_end && errors < 1000) {
        int n = next_events(events, 100, &t);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            if (th[i].fd < 0) continue;
            int done = th_event(i);
            if (done == 0) continue;
            if (done == 1) {
                record(t - th[i].started);
                ops++;
            }
            th_open(i, t);
        }
        for (int i = 0; i < concurrency; i++)  /* failed at once: retry */
            if (th[i].fd < 0 && errors < 1000) th_open(i, t);
    }
    report();
    return errors != 0;
}
#endif /* NGI_TLS */

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen pingpong HOST PORT CONNS SIZE SECONDS\n"
            "       loadgen lines HOST PORT CONNS RECORDS SECONDS\n"
            "       loadgen sized HOST PORT CONNS RECORDS SECONDS\n"
            "       loadgen stream HOST PORT CONNS SECONDS\n"
            "       loadgen connect HOST PORT CONCURRENCY SECONDS\n"
            "       loadgen idle HOST PORT CONNS HOLD_SECONDS\n"
            "       loadgen udp HOST PORT FLOWS SIZE SECONDS\n"
            "       loadgen tls-pingpong HOST PORT CONNS SIZE SECONDS\n"
            "       loadgen tls-stream HOST PORT CONNS SECONDS\n"
            "       loadgen tls-handshake HOST PORT CONCURRENCY SECONDS\n"
            "(the tls- modes when built with -DNGI_TLS -lssl -lcrypto)\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 6) usage();
    /* Started by the benchmark runner: die with it, even if it is killed. */
    const char *parent = getenv("NGI_BENCH_PARENT");
    if (parent) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != atoi(parent)) return 1;
    }
    mode_name = argv[1];
    const char *host = argv[2];
    int port = atoi(argv[3]), count = atoi(argv[4]);
    int is_framed = !strcmp(mode_name, "lines") || !strcmp(mode_name, "sized");
    int sized = !strcmp(mode_name, "pingpong") || !strcmp(mode_name, "udp") ||
                !strcmp(mode_name, "tls-pingpong") || is_framed;
    if (argc != (sized ? 7 : 6) || count < 1) usage();
    size_t size = sized ? (size_t)atol(argv[5]) : 0;
    double seconds = atof(argv[sized ? 6 : 5]);
    if (is_framed && (size < 1 || size > MAX_RECORDS)) {
        fprintf(stderr, "loadgen: RECORDS must be 1 .. %d\n", MAX_RECORDS);
        return 2;
    }
    if (sized && !is_framed && (size < 8 || size > MAX_MESSAGE)) {
        fprintf(stderr, "loadgen: SIZE must be 8 .. %d\n", MAX_MESSAGE);
        return 2;
    }

    struct rlimit rl;  /* as many descriptors as we may */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    /* Connecting 10,000 idle connections can take a while on a slow server. */
    alarm((unsigned)seconds + (strcmp(mode_name, "idle") ? 30 : 120));

    server.sin_family = AF_INET;
    server.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        return 2;
    }
    spread_sources = (ntohl(server.sin_addr.s_addr) >> 24) == 127;
    source_turn = (unsigned)getpid();  /* successive runs start elsewhere */
    ep = epoll_create1(0);
    make_pattern();

    if (!strcmp(mode_name, "pingpong")) return pingpong(count, size, seconds);
    if (is_framed) return framed(count, (unsigned)size, seconds);
    if (!strcmp(mode_name, "stream")) return stream(count, seconds);
    if (!strcmp(mode_name, "connect")) return connect_rate(count, seconds);
    if (!strcmp(mode_name, "idle")) return idle(count, seconds);
    if (!strcmp(mode_name, "udp")) return udp(count, size, seconds);
    if (!strncmp(mode_name, "tls-", 4)) {
#ifdef NGI_TLS
        if (tls_setup() < 0) return 1;
        if (!strcmp(mode_name, "tls-pingpong")) return tls_pingpong(count, size, seconds);
        if (!strcmp(mode_name, "tls-stream")) return tls_stream(count, seconds);
        if (!strcmp(mode_name, "tls-handshake")) return tls_handshake(count, seconds);
#else
        fprintf(stderr, "loadgen: built without TLS (build with -DNGI_TLS ... -lssl -lcrypto)\n");
        return 2;
#endif
    }
    usage();
    return 2;
}
