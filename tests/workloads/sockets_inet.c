/*
 * sockets_inet -- TCP and UDP sockets over IPv4 and IPv6 that crisp restores bound as they were.
 *
 * Protocol (like statecheck): prints "ready PID P3 P4 P5 P7\n" (the kernel-chosen ports of fds 3, 4,
 * 5, 7) on stdout, then waits for SIGUSR1; on it checks every socket and prints "PASS" or
 * "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 *
 * Fds: 3 TCP listener on 127.0.0.1 (SO_REUSEADDR, backlog 5); 4 TCP listener on [::1] (IPV6_V6ONLY,
 * SO_REUSEPORT); 5 UDP bound on 127.0.0.1 (SO_RCVBUF set); 6 UDP bound on 127.0.0.1 and connected to
 * 5; 7 UDP bound on [::1] (IPV6_V6ONLY), O_NONBLOCK; 8 TCP socket never bound (SO_KEEPALIVE, TCP_KEEPIDLE).
 * At check time the test has connected to 3 and 4 (sending "hi4" / "hi6") and sent "d4" to 5 and
 * "d6" to 7; the workload accepts, reads, and sends 6 → 5 over the connected socket.
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
#include <unistd.h>

#include "workload.h"

static int failed;
static volatile sig_atomic_t go;
#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fprintf(stderr, "\n"); failed = 1; } while (0)
#define DIE(what) do { perror(what); exit(2); } while (0)

static void on_usr1(int sig) { (void)sig; go = 1; }

static void at(int want, int fd)
{
    if (fd < 0)
        DIE("socket");
    if (fd != want && (dup2(fd, want) != want || close(fd)))
        DIE("dup2");
}

static void opt(int fd, int level, int name, int value)
{
    if (setsockopt(fd, level, name, &value, sizeof value))
        DIE("setsockopt");
}

static int getopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, name, &v, &l))
        return -1;
    return v;
}

static void bind4(int fd)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&a, sizeof a))
        DIE("bind4");
}

static void bind6(int fd)
{
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    if (bind(fd, (struct sockaddr *)&a, sizeof a))
        DIE("bind6");
}

static struct sockaddr_storage names[9];

static void remember(int fd)
{
    socklen_t l = sizeof names[fd];
    if (getsockname(fd, (struct sockaddr *)&names[fd], &l))
        DIE("getsockname");
}

static int port(int fd)
{
    struct sockaddr_storage *s = &names[fd];
    return ntohs(s->ss_family == AF_INET6 ? ((struct sockaddr_in6 *)s)->sin6_port : ((struct sockaddr_in *)s)->sin_port);
}

static void same_name(int fd)
{
    struct sockaddr_storage now;
    socklen_t l = sizeof now;
    memset(&now, 0, sizeof now);
    if (getsockname(fd, (struct sockaddr *)&now, &l))
        FAIL("fd %d: getsockname: %s", fd, strerror(errno));
    else if (memcmp(&now, &names[fd], l))
        FAIL("fd %d: bound to another address (port %d, was %d)", fd,
             ntohs(((struct sockaddr_in *)&now)->sin_port), port(fd));
}

static int readable(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, 10000) == 1;
}

static void expect(int fd, const char *want, const char *what)
{
    char buf[64];
    if (!readable(fd)) {
        FAIL("%s: nothing to read (expected '%s')", what, want);
        return;
    }
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0) {
        FAIL("%s: recv: %s", what, strerror(errno));
        return;
    }
    buf[n] = 0;
    if (strcmp(buf, want))
        FAIL("%s: got '%s', expected '%s'", what, buf, want);
}

static void expect_accept(int fd, const char *want, const char *what)
{
    if (!readable(fd)) {
        FAIL("%s: no connection to accept", what);
        return;
    }
    int c = accept(fd, NULL, NULL);
    if (c < 0) {
        FAIL("%s: accept: %s", what, strerror(errno));
        return;
    }
    expect(c, want, what);
    close(c);
}

int main(void)
{
    at(3, socket(AF_INET, SOCK_STREAM, 0));
    opt(3, SOL_SOCKET, SO_REUSEADDR, 1);
    bind4(3);
    if (listen(3, 5))
        DIE("listen");
    at(4, socket(AF_INET6, SOCK_STREAM, 0));
    opt(4, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    opt(4, SOL_SOCKET, SO_REUSEPORT, 1);
    bind6(4);
    if (listen(4, 3))
        DIE("listen6");
    at(5, socket(AF_INET, SOCK_DGRAM, 0));
    opt(5, SOL_SOCKET, SO_RCVBUF, 65536);
    bind4(5);
    at(6, socket(AF_INET, SOCK_DGRAM, 0));
    bind4(6);
    remember(5);
    if (connect(6, (struct sockaddr *)&names[5], sizeof(struct sockaddr_in)))
        DIE("connect");
    at(7, socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    opt(7, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    bind6(7);
    at(8, socket(AF_INET, SOCK_STREAM, 0));
    opt(8, SOL_SOCKET, SO_KEEPALIVE, 1);
    opt(8, IPPROTO_TCP, TCP_KEEPIDLE, 77);
    for (int fd = 3; fd <= 8; fd++)
        remember(fd);
    int rcvbuf = getopt_int(5, SOL_SOCKET, SO_RCVBUF);

    sigset_t old;
    usr1_only_in_sigsuspend(on_usr1, &old);
    printf("ready %d %d %d %d %d\n", getpid(), port(3), port(4), port(5), port(7));
    fflush(stdout);
    while (!go)
        sigsuspend(&old);

    for (int fd = 3; fd <= 8; fd++)
        same_name(fd);
    if (getopt_int(3, SOL_SOCKET, SO_ACCEPTCONN) != 1 || getopt_int(4, SOL_SOCKET, SO_ACCEPTCONN) != 1)
        FAIL("listeners are not listening");
    if (getopt_int(8, SOL_SOCKET, SO_ACCEPTCONN) != 0)
        FAIL("fd 8 listens");
    if (getopt_int(3, SOL_SOCKET, SO_REUSEADDR) != 1)
        FAIL("fd 3 lost SO_REUSEADDR");
    if (getopt_int(4, SOL_SOCKET, SO_REUSEPORT) != 1)
        FAIL("fd 4 lost SO_REUSEPORT");
    if (getopt_int(4, IPPROTO_IPV6, IPV6_V6ONLY) != 1 || getopt_int(7, IPPROTO_IPV6, IPV6_V6ONLY) != 1)
        FAIL("IPV6_V6ONLY lost");
    if (getopt_int(5, SOL_SOCKET, SO_RCVBUF) != rcvbuf)
        FAIL("fd 5 SO_RCVBUF %d, was %d", getopt_int(5, SOL_SOCKET, SO_RCVBUF), rcvbuf);
    if (getopt_int(8, SOL_SOCKET, SO_KEEPALIVE) != 1 || getopt_int(8, IPPROTO_TCP, TCP_KEEPIDLE) != 77)
        FAIL("fd 8 keepalive settings lost");
    if (!(fcntl(7, F_GETFL) & O_NONBLOCK))
        FAIL("fd 7 lost O_NONBLOCK");
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    memset(&peer, 0, sizeof peer);
    if (getpeername(6, (struct sockaddr *)&peer, &pl) || memcmp(&peer, &names[5], pl))
        FAIL("fd 6 is not connected to fd 5's address");
    if (getpeername(5, (struct sockaddr *)&peer, &(socklen_t){ sizeof peer }) == 0)
        FAIL("fd 5 became connected");

    expect_accept(3, "hi4", "TCP v4 listener");
    expect_accept(4, "hi6", "TCP v6 listener");
    expect(5, "d4", "UDP v4");
    expect(7, "d6", "UDP v6");
    if (send(6, "c", 1, 0) != 1)
        FAIL("send on connected UDP: %s", strerror(errno));
    expect(5, "c", "UDP connected 6 -> 5");

    if (!failed)
        fprintf(stderr, "PASS\n");
    return failed;
}
