/*
 * tcp_halfclosed -- loopback TCP connection pairs inside the tree, each held in a half-closed state, that
 * crisp dumps and restores (--tcp-established).
 *
 * Protocol (like statecheck): prints "ready PID\n" once every pair is in its state, then waits for
 * SIGUSR1; on it checks every pair and prints "PASS" or "FAIL: ..." lines on stderr (exit 0 / 1; 2 on
 * setup error). A second SIGUSR1 round is not needed: the checks end the connections.
 *
 * Pairs (a connected to b through a listener that is closed again; "a->b: N" is N bytes of pattern):
 *   A [::1]      a 3 FIN_WAIT2,  b 4 CLOSE_WAIT: b->a "b-before" unread; a->b "a-before", a shut down.
 *   B 127.0.0.1  a 5 FIN_WAIT1,  b 6 ESTABLISHED: b's small buffer full, a->b more, a shut down behind it.
 *   C 127.0.0.1  a 7 CLOSING,    b 8 FIN_WAIT2: as B, then b shut down too (a got b's FIN, b's is acked).
 *   D 127.0.0.1  a 9 FIN_WAIT2,  b 10 LAST_ACK: a shut down; a's small buffer full, b->a more, b shut down.
 * Checks: tcpi_state of every socket as above; each reader gets the bytes queued before the dump, in
 * order, then EOF; the sides still open for writing (A's b, B's b) write and the peer reads it.
 *
 * "tcp_halfclosed synsent PORT": only fd 3, a connect to 127.0.0.1:PORT left in SYN_SENT (the test's
 * listener has a full accept queue, so the SYN goes unanswered); the check: fd 3 is still SYN_SENT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static long filled[11];     /* bytes of pattern written on fd, when it filled its peer */

#define DIE(what) do { perror(what); exit(2); } while (0)

static void on_usr1(int sig) { (void)sig; go = 1; }

static const char *state_name(int s)
{
    static const char *names[] = { "?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
        "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING" };
    return s >= 0 && s <= 11 ? names[s] : "?";
}

static int tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
        return -1;
    return ti.tcpi_state;
}

static void opt(int fd, int level, int name, int value)
{
    if (setsockopt(fd, level, name, &value, sizeof value))
        DIE("setsockopt");
}

/* FD moved to 20 or above, so no dup2 onto 3..10 closes it. */
static int high(int fd)
{
    if (fd < 0)
        DIE("socket");
    int h = fcntl(fd, F_DUPFD, 20);
    if (h < 0)
        DIE("fcntl");
    close(fd);
    return h;
}

/* A connected pair on fds A and B (a connects, b is accepted); SMALL_A / SMALL_B: small buffers there. */
static void pair(int family, int a, int b, int small_a, int small_b)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *s4;
    }
    int l = high(socket(family, SOCK_STREAM, 0));
    if (l < 0)
        DIE("socket");
    if (small_b) {
        opt(l, SOL_SOCKET, SO_RCVBUF, 16384);
        opt(l, SOL_SOCKET, SO_SNDBUF, 16384);
    }
    if (bind(l, (struct sockaddr *)&ss, len) || listen(l, 1))
        DIE("listen");
    if (getsockname(l, (struct sockaddr *)&ss, &len))
        DIE("getsockname");
    int c = high(socket(family, SOCK_STREAM, 0));
    if (c < 0)
        DIE("socket");
    if (small_a) {
        opt(c, SOL_SOCKET, SO_RCVBUF, 16384);
        opt(c, SOL_SOCKET, SO_SNDBUF, 16384);
    }
    if (connect(c, (struct sockaddr *)&ss, len))
        DIE("connect");
    workload_fd_at(a, c, "connect");
    workload_fd_at(b, accept(l, NULL, NULL), "accept");
    close(l);
}

static void send_all(int fd, const char *s)
{
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
        DIE("send");
}

/* Writes pattern bytes on FD until its send buffer is full (the peer reads nothing). */
static void fill(int fd)
{
    char buf[4096];
    long at = 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        for (int i = 0; i < (int)sizeof buf; i++)
            buf[i] = (char)((at + i) % 251);
        ssize_t n = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            /* Once more after a pause: the peer's window may still have taken some. */
            struct timespec t = { 0, 200 * 1000 * 1000 };
            nanosleep(&t, NULL);
            n = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                break;
        }
        if (n < 0)
            DIE("send (fill)");
        at += n;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    filled[fd] = at;
}

static void wait_state(int fd, int want)
{
    for (int i = 0; i < 500 && tcp_state(fd) != want; i++)
        usleep(10000);
    if (tcp_state(fd) != want) {
        fprintf(stderr, "setup: fd %d is %s, not %s\n", fd, state_name(tcp_state(fd)), state_name(want));
        exit(2);
    }
}

static void check_state(int fd, int want)
{
    int s = tcp_state(fd);
    CHECK("state", s == want, "fd %d is %s, expected %s", fd, state_name(s), state_name(want));
}

/* FD gives exactly WANT (text) then EOF, within 20 s. */
static void expect_text_eof(int fd, const char *want)
{
    char buf[256];
    size_t got = 0, n = strlen(want);
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 20000) != 1) {
            FAIL("read", "fd %d: nothing more after %zu bytes", fd, got);
            return;
        }
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0) {
            FAIL("read", "fd %d: %s", fd, strerror(errno));
            return;
        }
        if (r == 0)
            break;
        got += r;
        if (got >= sizeof buf - 1)
            break;
    }
    buf[got] = 0;
    CHECK("read", got == n && !memcmp(buf, want, n), "fd %d: got '%s' then EOF, expected '%s'", fd, buf, want);
}

/* FD gives the pattern its peer PEER wrote (filled[PEER] bytes) then EOF. */
static void expect_pattern_eof(int fd, int peer)
{
    char buf[65536];
    long at = 0;
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 20000) != 1) {
            FAIL("read", "fd %d: nothing more after %ld of %ld bytes", fd, at, filled[peer]);
            return;
        }
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0) {
            FAIL("read", "fd %d: %s after %ld bytes", fd, strerror(errno), at);
            return;
        }
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != (char)((at + i) % 251)) {
                FAIL("read", "fd %d: byte %ld differs", fd, at + i);
                return;
            }
        at += r;
    }
    CHECK("read", at == filled[peer], "fd %d: %ld bytes then EOF, expected %ld", fd, at, filled[peer]);
}

static int syn_sent(sigset_t *wait_mask, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    workload_fd_at(3, socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
    if (connect(3, (struct sockaddr *)&a, sizeof a) == 0 || errno != EINPROGRESS)
        DIE("connect (expected EINPROGRESS)");
    wait_state(3, TCP_SYN_SENT);
    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(wait_mask);
    check_state(3, TCP_SYN_SENT);
    if (failures)
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    if (argc == 3 && !strcmp(argv[1], "synsent"))
        return syn_sent(&wait_mask, atoi(argv[2]));

    /* A: a shuts down with its data read by nobody; b has data for a unread too. */
    pair(AF_INET6, 3, 4, 0, 0);
    send_all(4, "b-before");
    send_all(3, "a-before");
    shutdown(3, SHUT_WR);
    wait_state(3, TCP_FIN_WAIT2);
    wait_state(4, TCP_CLOSE_WAIT);

    /* B: a's FIN waits behind data b's full buffer does not take. */
    pair(AF_INET, 5, 6, 1, 1);
    fill(5);
    shutdown(5, SHUT_WR);
    wait_state(5, TCP_FIN_WAIT1);
    wait_state(6, TCP_ESTABLISHED);

    /* C: as B, then b's FIN crosses: a has both FINs (CLOSING), b's own is acknowledged. */
    pair(AF_INET, 7, 8, 1, 1);
    fill(7);
    shutdown(7, SHUT_WR);
    wait_state(7, TCP_FIN_WAIT1);
    shutdown(8, SHUT_WR);
    wait_state(7, TCP_CLOSING);
    wait_state(8, TCP_FIN_WAIT2);

    /* D: a shuts down; b answers with more than a's buffer takes, then its FIN waits behind it. */
    pair(AF_INET, 9, 10, 1, 1);
    shutdown(9, SHUT_WR);
    wait_state(9, TCP_FIN_WAIT2);
    wait_state(10, TCP_CLOSE_WAIT);
    fill(10);
    shutdown(10, SHUT_WR);
    wait_state(10, TCP_LAST_ACK);

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&wait_mask);

    check_state(3, TCP_FIN_WAIT2);
    check_state(4, TCP_CLOSE_WAIT);
    check_state(5, TCP_FIN_WAIT1);
    check_state(6, TCP_ESTABLISHED);
    check_state(7, TCP_CLOSING);
    check_state(8, TCP_FIN_WAIT2);
    check_state(9, TCP_FIN_WAIT2);
    check_state(10, TCP_LAST_ACK);

    /* A: the half-closed side reads what was queued, then EOF; the other side writes on. */
    expect_text_eof(4, "a-before");
    send_all(4, "b-after");
    shutdown(4, SHUT_WR);
    expect_text_eof(3, "b-beforeb-after");
    CHECK("write", send(3, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "fd 3: a write after SHUT_WR did not fail with EPIPE");

    /* B: b reads all of a's data then EOF, and still writes to a. */
    expect_pattern_eof(6, 5);
    send_all(6, "b-after");
    shutdown(6, SHUT_WR);
    expect_text_eof(5, "b-after");

    /* C: b reads all then EOF; a already has b's EOF. */
    expect_text_eof(7, "");
    expect_pattern_eof(8, 7);

    /* D: a reads all of b's data then EOF. */
    expect_pattern_eof(9, 10);

    if (failures)
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}
