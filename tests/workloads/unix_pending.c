/*
 * unix_pending -- unix listeners holding connections not yet accepted (kernel embryo sockets).
 *
 * argv[1] a fresh directory (p.sock goes there); argv[2] "ok" (default), "sent" (a pending client has
 * already written, which no dump can read), "closed" (a pending client closed its end) or "tcp" (a TCP
 * listener with a connection not yet accepted, which no restore can queue again).
 * Prints "ready PID CHILDPID\n", waits for SIGUSR1 (sigsuspend), then checks and prints PASS or FAIL
 * lines on stderr; exit 0 on pass.
 *
 * State: stream listener L on DIR/p.sock (backlog 4) with pending clients a, b (parent) and d (the
 * child, connected after b); seqpacket listener S on an abstract name with pending client c.
 * After restore the clients write ("a", "b", "d"; c two records); the parent then accepts: L's
 * connections must come back in the order they were made, each carrying its client's data, and
 * the replies must reach the right clients.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static int failures;
static char path[108], abstract[64];
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static socklen_t addr(struct sockaddr_un *a, int abstract_name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract_name) {
        strcpy(a->sun_path + 1, abstract);
        return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract);
    }
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static int client(int type, int abstract_name)
{
    struct sockaddr_un a;
    socklen_t l = addr(&a, abstract_name);
    int fd = socket(AF_UNIX, type, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, l)) {
        perror("connect");
        exit(2);
    }
    return fd;
}

static void put(int fd, const char *s, const char *what)
{
    CHECK(what, send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s), "send: %s", strerror(errno));
}

static void expect(int fd, const char *want, const char *what)
{
    char buf[64];
    struct pollfd p = { fd, POLLIN, 0 };
    ssize_t n = poll(&p, 1, 5000) == 1 ? recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT) : -1;
    if (n < 0) {
        FAIL(what, "nothing to read (expected '%s')", want);
        return;
    }
    buf[n] = 0;
    CHECK(what, strcmp(buf, want) == 0, "read '%s', expected '%s'", buf, want);
}

static int accept_one(int lfd, const char *what)
{
    struct pollfd p = { lfd, POLLIN, 0 };
    int fd = poll(&p, 1, 5000) == 1 ? accept4(lfd, NULL, NULL, SOCK_NONBLOCK) : -1;
    CHECK(what, fd >= 0, "no connection waiting to be accepted");
    return fd;
}

static void expect_peer(int fd, int abstract_name, const char *what)
{
    struct sockaddr_un want, got;
    socklen_t wl = addr(&want, abstract_name), gl = sizeof got;
    memset(&got, 0, sizeof got);
    CHECK(what, getpeername(fd, (struct sockaddr *)&got, &gl) == 0 && gl == wl && memcmp(&got, &want, wl) == 0,
          "getpeername is not the listener's name");
}

static void wait_usr1(sigset_t *mask)
{
    while (!go)
        sigsuspend(mask);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *mode = argc > 2 ? argv[2] : "ok";
    snprintf(path, sizeof path, "%s/p.sock", argv[1]);
    snprintf(abstract, sizeof abstract, "crisp-pending-%d", getpid());
    sigset_t mask;
    workload_begin(on_usr1, &mask);

    struct sockaddr_un a;
    socklen_t l = addr(&a, 0);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&a, l) || listen(lfd, 4))
        return 2;
    l = addr(&a, 1);
    int sfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (bind(sfd, (struct sockaddr *)&a, l) || listen(sfd, 2))
        return 2;
    int ca = client(SOCK_STREAM, 0), cb = client(SOCK_STREAM, 0), cc = client(SOCK_SEQPACKET, 1);
    if (strcmp(mode, "sent") == 0)
        put(cb, "too early", "early send");
    if (strcmp(mode, "closed") == 0)
        close(client(SOCK_STREAM, 0));
    if (strcmp(mode, "tcp") == 0) {
        /* a TCP listener with a connection it has not accepted (its fd comes before the client's) */
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t inl = sizeof in;
        int t = socket(AF_INET, SOCK_STREAM, 0);
        if (t < 0 || bind(t, (struct sockaddr *)&in, inl) || listen(t, 4) || getsockname(t, (struct sockaddr *)&in, &inl))
            return 2;
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&in, inl))
            return 2;
    }

    int ready[2];
    if (pipe(ready))
        return 2;
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        close(lfd);
        close(sfd);
        close(ca);
        close(cb);
        close(cc);
        int cd = client(SOCK_STREAM, 0);
        if (write(ready[1], "c", 1) != 1)
            return 2;
        close(ready[1]);
        wait_usr1(&mask);
        put(cd, "d", "child send");
        expect(cd, "D!", "child's reply");
        return failures ? 1 : 0;
    }
    /* The child's connection is queued before the ready line. */
    char c;
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1)
        return 2;
    close(ready[0]);
    printf("ready %d %d\n", getpid(), child);
    wait_usr1(&mask);

    expect_peer(ca, 0, "client a's peer");
    expect_peer(cc, 1, "seqpacket client's peer");
    kill(child, SIGUSR1);
    put(ca, "a", "client a");
    put(cb, "b", "client b");
    put(cc, "rec-1", "seqpacket client");
    put(cc, "rec-two", "seqpacket client");
    usleep(200000);   /* the child's "d" is sent */

    int xa = accept_one(lfd, "first accept"), xb = accept_one(lfd, "second accept"), xd = accept_one(lfd, "third accept");
    expect(xa, "a", "first accepted connection");
    expect(xb, "b", "second accepted connection");
    expect(xd, "d", "third accepted connection");
    put(xa, "A!", "reply to a");
    put(xb, "B!", "reply to b");
    put(xd, "D!", "reply to d");
    expect(ca, "A!", "client a's reply");
    expect(cb, "B!", "client b's reply");
    struct pollfd p = { lfd, POLLIN, 0 };
    CHECK("stream listener", poll(&p, 1, 0) == 0, "a fourth connection is waiting");

    int xc = accept_one(sfd, "seqpacket accept");
    expect(xc, "rec-1", "seqpacket record 1");
    expect(xc, "rec-two", "seqpacket record 2");

    int status;
    CHECK("child", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "exited with status %#x", status);
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
