/*
 * tcp_seq -- a TCP server with one connected client that keeps talking, for live migration of a connection.
 *
 * tcp_seq server DIR PORT: listens on 0.0.0.0:PORT (fd 3), writes DIR/server-ready, accepts one client and
 *   answers each line "N\n" with "N K\n", K its own count of lines so far. End of stream: exit 0; an error:
 *   DIR/server-error and exit 1.
 * tcp_seq client DIR ADDR PORT BIND: connects from BIND to ADDR:PORT and sends 1, 2, 3, ... every 10 ms, whether
 *   the answers come or not; the answers, in order, must be "N N\n" (no request lost, none answered twice, the
 *   server's count continuous). DIR/progress holds the last N answered. On SIGUSR1 it stops, shuts the connection
 *   down and writes DIR/client-verdict: "PASS N"; a reset, an end of stream or a wrong answer writes "FAIL ..." at
 *   once and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

static const char *dir;
static volatile sig_atomic_t stop;
static void on_usr1(int sig) { (void)sig; stop = 1; }

static void fail(const char *name, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "FAIL %s: %s\n", what, strerror(errno));
    write_file(dir, name, text);
    exit(1);
}

/* One line (without its newline) into buf; 0 at end of stream. */
static int read_line(int fd, char *buf, size_t size, const char *who)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + have, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail(who, "recv");
        if (n == 0)
            return 0;
        if (buf[have] == '\n') {
            buf[have] = 0;
            return 1;
        }
        if (++have == size - 1) {
            errno = EPROTO;
            fail(who, "line too long");
        }
    }
}

static void send_all(int fd, const char *p, size_t n, const char *who)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail(who, "send");
        p += w;
        n -= (size_t)w;
    }
}

static int server(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4))
        fail("server-error", "listen");
    write_file(dir, "server-ready", "ready\n");
    int c = accept(l, NULL, NULL);
    if (c < 0)
        fail("server-error", "accept");
    char line[64], reply[96];
    for (long count = 1;; count++) {
        if (!read_line(c, line, sizeof line, "server-error"))
            return 0;
        int len = snprintf(reply, sizeof reply, "%s %ld\n", line, count);
        send_all(c, reply, (size_t)len, "server-error");
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int client(const char *addr, int port, const char *bind_addr)
{
    signal(SIGUSR1, on_usr1);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in local = { .sin_family = AF_INET }, peer = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, bind_addr, &local.sin_addr) != 1 || inet_pton(AF_INET, addr, &peer.sin_addr) != 1) {
        errno = EINVAL;
        fail("client-verdict", "bad address");
    }
    if (bind(s, (struct sockaddr *)&local, sizeof local))
        fail("client-verdict", "bind");
    if (connect(s, (struct sockaddr *)&peer, sizeof peer))
        fail("client-verdict", "connect");
    /* A request every 10 ms whether or not the answers come: while the server moves, segments keep going out. */
    char in[4096], line[96], progress[32];
    size_t have = 0;
    long sent = 0, answered = 0;
    double next = now();
    while (!stop) {
        if (now() >= next) {
            int len = snprintf(line, sizeof line, "%ld\n", ++sent);
            send_all(s, line, (size_t)len, "client-verdict");
            next += 0.01;
        }
        double wait = next - now();
        struct pollfd p = { .fd = s, .events = POLLIN };
        int r = poll(&p, 1, wait > 0 ? (int)(wait * 1000) + 1 : 0);
        if (r < 0 && errno != EINTR)
            fail("client-verdict", "poll");
        if (r <= 0)
            continue;
        ssize_t n = recv(s, in + have, sizeof in - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("client-verdict", "recv");
        if (n == 0) {
            errno = ECONNABORTED;
            fail("client-verdict", "end of stream");
        }
        have += (size_t)n;
        char *nl;
        while ((nl = memchr(in, '\n', have)) != NULL) {
            *nl = 0;
            long a = -1, b = -1;
            answered++;
            if (sscanf(in, "%ld %ld", &a, &b) != 2 || a != answered || b != answered) {
                char text[256];
                snprintf(text, sizeof text, "FAIL answer '%.64s' where '%ld %ld' was due\n", in, answered, answered);
                write_file(dir, "client-verdict", text);
                return 1;
            }
            size_t used = (size_t)(nl - in) + 1;
            memmove(in, nl + 1, have - used);
            have -= used;
        }
        snprintf(progress, sizeof progress, "%ld\n", answered);
        write_file(dir, "progress", progress);
    }
    shutdown(s, SHUT_WR);
    snprintf(line, sizeof line, "PASS %ld\n", answered);
    write_file(dir, "client-verdict", line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "server") == 0) {
        dir = argv[2];
        return server(atoi(argv[3]));
    }
    if (argc >= 6 && strcmp(argv[1], "client") == 0) {
        dir = argv[2];
        return client(argv[3], atoi(argv[4]), argv[5]);
    }
    fprintf(stderr, "usage: tcp_seq server DIR PORT | tcp_seq client DIR ADDR PORT BIND\n");
    return 2;
}
