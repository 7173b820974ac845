/*
 * sockets_unix -- a parent and a child holding every kind of unix socket crisp restores.
 *
 * Protocol (like statecheck): argv[1] is a fresh directory (socket files go there); prints
 * "ready PID CHILDPID\n" on stdout, then waits for SIGUSR1; on it the parent checks its
 * sockets, wakes the child (SIGUSR1), which checks its own, and prints "PASS" or "FAIL: ..."
 * lines on stderr. Exit 0 on pass, 1 on fail, 2 on setup error. Checks consume the queues,
 * so they run once, after however many dump/restore cycles.
 *
 * Fds: 3,4 stream pair ("hello stream" queued in 3, "back" in 4; SO_SNDBUF on 3);
 * 5,6 dgram pair (3 datagrams queued in 5, boundaries; 5 O_NONBLOCK + SO_PASSCRED; SO_RCVTIMEO on 6);
 * 7,8 seqpacket pair (2 records queued in 8); 9 stream listener on DIR/l.sock, backlog 7;
 * 10 listener on an abstract name; 12 accepted from 9 ("from-child" queued), the child's 11
 * is its client ("from-parent" queued); 13 dgram bound to an abstract name with 2 datagrams
 * from a closed sender; 14,15 stream pair, 14 shut down for writing after "bye";
 * 16 stream socket whose peer closed after writing "orphan".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int failed;
static const char *dir;
static char abstract_l[64], abstract_d[64];
#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fprintf(stderr, "\n"); failed = 1; } while (0)
#define DIE(what) do { perror(what); exit(2); } while (0)

static void at(int want, int fd)
{
    if (fd < 0)
        DIE("socket");
    if (fd != want && (dup2(fd, want) != want || close(fd)))
        DIE("dup2");
}

static socklen_t addr(struct sockaddr_un *a, const char *path, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract) {
        strcpy(a->sun_path + 1, path);
        return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
    }
    snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static void sendall(int fd, const char *s)
{
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
        DIE("send");
}

/* Reads exactly one message/chunk without blocking and compares it. */
static void expect_recv(int fd, const char *want, const char *what)
{
    char buf[256];
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 5000) != 1) {
        FAIL("%s: nothing to read (expected '%s')", what, want);
        return;
    }
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0) {
        FAIL("%s: recv: %s (expected '%s')", what, strerror(errno), want);
        return;
    }
    buf[n] = 0;
    if (strcmp(buf, want))
        FAIL("%s: read '%s', expected '%s'", what, buf, want);
}

static void expect_empty(int fd, const char *what)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (!(n < 0 && errno == EAGAIN))
        FAIL("%s: expected an empty queue, recv gave %zd (%s)", what, n, n < 0 ? strerror(errno) : "data");
}

static void expect_eof(int fd, const char *what)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n != 0)
        FAIL("%s: expected end of stream, recv gave %zd (%s)", what, n, n < 0 ? strerror(errno) : "data");
}

static int opt(int fd, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, SOL_SOCKET, name, &v, &l);
    return v;
}

static void expect_type(int fd, int type, const char *what)
{
    if (opt(fd, SO_TYPE) != type)
        FAIL("%s: SO_TYPE %d, expected %d", what, opt(fd, SO_TYPE), type);
}

/* The socket's own name equals (path or abstract) name. */
static void expect_name(int fd, const char *name, int abstract, int peer, const char *what)
{
    struct sockaddr_un want, got;
    socklen_t wl = addr(&want, name, abstract), gl = sizeof got;
    memset(&got, 0, sizeof got);
    if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&got, &gl))
        FAIL("%s: get%sname: %s", what, peer ? "peer" : "sock", strerror(errno));
    else if (gl != wl || memcmp(&got, &want, wl))
        FAIL("%s: %s name '%s%s' (len %u), expected '%s%s' (len %u)", what, peer ? "peer" : "own",
             got.sun_path[0] ? "" : "@", got.sun_path[0] ? got.sun_path : got.sun_path + 1, gl,
             abstract ? "@" : "", want.sun_path[0] ? want.sun_path : want.sun_path + 1, wl);
}

static void expect_accepts(int lfd, const char *name, int abstract, const char *what)
{
    struct sockaddr_un a;
    socklen_t l = addr(&a, name, abstract);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, l)) {
        FAIL("%s: connect: %s", what, strerror(errno));
        close(c);
        return;
    }
    struct pollfd p = { lfd, POLLIN, 0 };
    int s = poll(&p, 1, 5000) == 1 ? accept(lfd, NULL, NULL) : -1;
    if (s < 0)
        FAIL("%s: accept failed: %s", what, strerror(errno));
    else {
        sendall(c, "ping");
        expect_recv(s, "ping", what);
        close(s);
    }
    close(c);
}

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static void wait_usr1(void)
{
    sigset_t none;
    sigemptyset(&none);
    while (!go)
        sigsuspend(&none);
}

static int child_main(void)
{
    wait_usr1();
    expect_type(11, SOCK_STREAM, "child client");
    expect_name(11, "l.sock", 0, 1, "child client peer");
    expect_recv(11, "from-parent", "child client");
    sendall(11, "child-again");
    return failed;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    dir = argv[1];
    syscall(SYS_close_range, 3, ~0U, 0);
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(abstract_l, sizeof abstract_l, "crisp-l-%d", getpid());
    snprintf(abstract_d, sizeof abstract_d, "crisp-d-%d", getpid());
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);

    int sv[2];
    struct sockaddr_un a;
    socklen_t l;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(3, 30); at(4, 31);
    int sndbuf = 65536;
    setsockopt(3, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    sendall(4, "hello ");
    sendall(4, "stream");
    sendall(3, "back");

    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(5, 30); at(6, 31);
    sendall(6, "d1");
    sendall(6, "dgram-two");
    sendall(6, "third");
    fcntl(5, F_SETFL, O_NONBLOCK);
    int one = 1;
    setsockopt(5, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    struct timeval tv = { 7, 250000 };
    setsockopt(6, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(7, 30); at(8, 31);
    sendall(7, "sp1");
    sendall(7, "sp-2");

    at(9, socket(AF_UNIX, SOCK_STREAM, 0));
    l = addr(&a, "l.sock", 0);
    if (bind(9, (struct sockaddr *)&a, l) || listen(9, 7)) DIE("bind l.sock");
    chmod(a.sun_path, 0600);
    at(10, socket(AF_UNIX, SOCK_STREAM, 0));
    l = addr(&a, abstract_l, 1);
    if (bind(10, (struct sockaddr *)&a, l) || listen(10, 3)) DIE("bind abstract");

    /* 11: client (moved to the child), 12: its accepted end. */
    at(11, socket(AF_UNIX, SOCK_STREAM, 0));
    l = addr(&a, "l.sock", 0);
    if (connect(11, (struct sockaddr *)&a, l)) DIE("connect");
    at(12, accept(9, NULL, NULL));
    sendall(11, "from-child");
    sendall(12, "from-parent");

    at(13, socket(AF_UNIX, SOCK_DGRAM, 0));
    l = addr(&a, abstract_d, 1);
    if (bind(13, (struct sockaddr *)&a, l)) DIE("bind dgram");
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sendto(s, "dg-a", 4, 0, (struct sockaddr *)&a, l) != 4 || sendto(s, "dg-bb", 5, 0, (struct sockaddr *)&a, l) != 5)
        DIE("sendto");
    close(s);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(14, 30); at(15, 31);
    sendall(14, "bye");
    shutdown(14, SHUT_WR);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) DIE("socketpair");
    at(16, sv[0]);
    sendall(sv[1], "orphan");
    close(sv[1]);

    pid_t child = fork();
    if (child == 0) {
        for (int fd = 3; fd < 20; fd++)
            if (fd != 11)
                close(fd);
        return child_main();
    }
    close(11);
    printf("ready %d %d\n", getpid(), child);
    wait_usr1();

    expect_type(3, SOCK_STREAM, "stream pair");
    expect_recv(3, "hello stream", "stream pair 3");
    expect_recv(4, "back", "stream pair 4");
    if (opt(3, SO_SNDBUF) != 2 * sndbuf)
        FAIL("fd 3 SO_SNDBUF %d, expected %d", opt(3, SO_SNDBUF), 2 * sndbuf);
    sendall(4, "after");
    expect_recv(3, "after", "stream pair after restore");

    expect_type(5, SOCK_DGRAM, "dgram pair");
    expect_recv(5, "d1", "dgram 1");
    expect_recv(5, "dgram-two", "dgram 2");
    expect_recv(5, "third", "dgram 3");
    expect_empty(5, "dgram pair");
    if (!(fcntl(5, F_GETFL) & O_NONBLOCK))
        FAIL("fd 5 lost O_NONBLOCK");
    if (opt(5, SO_PASSCRED) != 1)
        FAIL("fd 5 SO_PASSCRED %d", opt(5, SO_PASSCRED));
    struct timeval got = {0};
    socklen_t gl = sizeof got;
    getsockopt(6, SOL_SOCKET, SO_RCVTIMEO, &got, &gl);
    if (got.tv_sec != 7 || got.tv_usec < 240000 || got.tv_usec > 260000)
        FAIL("fd 6 SO_RCVTIMEO %ld.%06ld, expected 7.250000", (long)got.tv_sec, (long)got.tv_usec);

    expect_type(8, SOCK_SEQPACKET, "seqpacket");
    expect_recv(8, "sp1", "seqpacket 1");
    expect_recv(8, "sp-2", "seqpacket 2");

    expect_name(9, "l.sock", 0, 0, "path listener");
    if (opt(9, SO_ACCEPTCONN) != 1)
        FAIL("fd 9 is not listening");
    l = addr(&a, "l.sock", 0);
    struct stat st;
    if (stat(a.sun_path, &st) || !S_ISSOCK(st.st_mode) || (st.st_mode & 0777) != 0600)
        FAIL("%s: not a socket file of mode 0600", a.sun_path);
    expect_accepts(9, "l.sock", 0, "path listener");
    expect_name(10, abstract_l, 1, 0, "abstract listener");
    expect_accepts(10, abstract_l, 1, "abstract listener");

    expect_name(12, "l.sock", 0, 0, "accepted");
    expect_recv(12, "from-child", "accepted");

    expect_name(13, abstract_d, 1, 0, "bound dgram");
    expect_recv(13, "dg-a", "bound dgram 1");
    expect_recv(13, "dg-bb", "bound dgram 2");

    expect_recv(15, "bye", "shut pair");
    expect_eof(15, "shut pair");
    if (send(14, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
        FAIL("fd 14 can still send after shutdown(SHUT_WR)");
    sendall(15, "other-way");
    expect_recv(14, "other-way", "shut pair, other way");

    expect_recv(16, "orphan", "orphan");
    expect_eof(16, "orphan");

    kill(child, SIGUSR1);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
        FAIL("child failed (status %#x)", status);
    else
        expect_recv(12, "child-again", "accepted, after the child's check");
    if (!failed)
        fprintf(stderr, "PASS\n");
    return failed;
}
