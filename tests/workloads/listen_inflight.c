/*
 * listen_inflight DIR -- listening sockets whose connections not yet accepted are dropped by --skip-in-flight.
 *   fd 3: a TCP listener on 127.0.0.1 (a port the kernel picks); fd 4: a unix stream listener on DIR/l.sock.
 * Writes DIR/ready ("ready PID PORT"); the test then connects to both from outside the tree and leaves the
 * connections unaccepted. Waits in sigsuspend() for SIGUSR1, then checks: both still listen (SO_ACCEPTCONN) on the
 * same address, nothing is waiting to be accepted (the dropped connections are gone), and a new connection to each
 * is accepted and carries bytes both ways. Verdict in DIR/verdict ("PASS" or "FAIL:" lines); exit 0 on pass.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "workload.h"

static int failures;
static char verdict[8192];
static int vl;
static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#define FAIL(name, ...) do { vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: %s: ", name); \
                             vl += snprintf(verdict + vl, sizeof verdict - vl, __VA_ARGS__); \
                             vl += snprintf(verdict + vl, sizeof verdict - vl, "\n"); failures++; } while (0)
#define CHECK(name, cond, ...) do { if (!(cond)) FAIL(name, __VA_ARGS__); } while (0)
#define SETUP(c) do { if (!(c)) { perror(#c); exit(2); } } while (0)

/* The listener is still one, at ADDR, with nothing queued; a new client is accepted and talks both ways. */
static void check(const char *what, int lfd, int family, const void *addr, socklen_t len)
{
    int on = 0;
    socklen_t ol = sizeof on;
    CHECK(what, getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == 0 && on, "not listening");
    struct sockaddr_storage now;
    socklen_t nl = sizeof now;
    CHECK(what, getsockname(lfd, (struct sockaddr *)&now, &nl) == 0 && nl == len && memcmp(&now, addr, len) == 0,
          "bound elsewhere now");
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    int n = poll(&p, 1, 0);
    CHECK(what, n == 0, "a connection is still waiting to be accepted (poll %d, revents %#x)", n, p.revents);

    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0 || connect(c, addr, len)) {
        FAIL(what, "connect: %s", strerror(errno));
        return;
    }
    p.revents = 0;
    CHECK(what, poll(&p, 1, 5000) == 1, "the new connection is not offered");
    int a = accept(lfd, NULL, NULL);
    if (a < 0) {
        FAIL(what, "accept: %s", strerror(errno));
        close(c);
        return;
    }
    char buf[8] = { 0 };
    CHECK(what, write(c, "ping", 4) == 4 && read(a, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0, "client to server");
    CHECK(what, write(a, "pong", 4) == 4 && read(c, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0, "server to client");
    close(a);
    close(c);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);

    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t inl = sizeof in;
    workload_fd_at(3, socket(AF_INET, SOCK_STREAM, 0), "socket(AF_INET)");
    SETUP(bind(3, (struct sockaddr *)&in, inl) == 0 && listen(3, 8) == 0);
    SETUP(getsockname(3, (struct sockaddr *)&in, &inl) == 0);

    struct sockaddr_un un = { .sun_family = AF_UNIX };
    snprintf(un.sun_path, sizeof un.sun_path, "%s/l.sock", argv[1]);
    socklen_t unl = offsetof(struct sockaddr_un, sun_path) + strlen(un.sun_path) + 1;
    workload_fd_at(4, socket(AF_UNIX, SOCK_STREAM, 0), "socket(AF_UNIX)");
    SETUP(bind(4, (struct sockaddr *)&un, unl) == 0 && listen(4, 8) == 0);

    char line[64];
    snprintf(line, sizeof line, "ready %d %d\n", getpid(), ntohs(in.sin_port));
    write_file(argv[1], "ready", line);
    while (!got_usr1)
        sigsuspend(&wait_mask);

    check("tcp", 3, AF_INET, &in, inl);
    check("unix", 4, AF_UNIX, &un, unl);
    write_file(argv[1], "verdict", failures ? verdict : "PASS\n");
    return failures ? 1 : 0;
}
