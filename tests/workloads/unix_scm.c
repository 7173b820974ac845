/*
 * unix_scm -- file descriptors in flight: queued in unix sockets with SCM_RIGHTS, closed by the sender.
 *
 * argv[1] a fresh directory (file "f" goes there). Prints "ready PID\n", waits for SIGUSR1
 * (sigsuspend), then receives everything and checks it; PASS or FAIL lines on stderr, exit 0 on pass.
 *
 * Stream pair 3/4, queued in 3: "file" + a regular file read to offset 5; "pipe" + the read end of a
 * pipe holding "piped" (the write end stays at fd 7); "efd" + an eventfd (counter 7) the task also
 * holds at fd 8; "sock" + one end of a socketpair with "inside" queued in it (the other end at fd 9);
 * "two" + a memfd holding "memfd-data" and a second fd of the first message's file (same description).
 * Seqpacket pair 5/6, queued in 5: a record "rec" carrying a datagram socket (one of a pair whose
 * other end is only in flight too, in the same record) — a socket known only in flight.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
#define DIE(what) do { perror(what); exit(2); } while (0)

#define at(want, fd) workload_fd_at(want, fd, "open")

static void send_fds(int sock, const char *text, const int *fds, int n)
{
    char control[CMSG_SPACE(4 * sizeof(int))] = {0};
    struct iovec iov = { (void *)text, strlen(text) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    if (sendmsg(sock, &m, MSG_NOSIGNAL) != (ssize_t)strlen(text))
        DIE("sendmsg");
}

/* Receives one message of exactly TEXT with N fds into FDS. */
static int recv_fds(int sock, const char *text, int *fds, int n)
{
    char buf[64], control[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = { buf, strlen(text) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    struct pollfd p = { sock, POLLIN, 0 };
    ssize_t r = poll(&p, 1, 5000) == 1 ? recvmsg(sock, &m, MSG_DONTWAIT) : -1;
    if (r < 0) {
        FAIL(text, "recvmsg: %s", strerror(errno));
        return 0;
    }
    buf[r] = 0;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int got = c && c->cmsg_type == SCM_RIGHTS ? (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0;
    CHECK(text, strcmp(buf, text) == 0, "read '%s'", buf);
    CHECK(text, got == n, "%d fd(s) arrived, expected %d", got, n);
    if (got != n)
        return 0;
    memcpy(fds, CMSG_DATA(c), n * sizeof(int));
    return 1;
}

static void expect_read(int fd, const char *want, const char *what)
{
    char buf[64] = {0};
    struct pollfd p = { fd, POLLIN, 0 };
    ssize_t n = poll(&p, 1, 5000) == 1 ? read(fd, buf, strlen(want)) : -1;
    CHECK(what, n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0, "read '%s' (%zd), expected '%s'", buf, n, want);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t mask;
    workload_begin(on_usr1, &mask);
    char path[4096];
    snprintf(path, sizeof path, "%s/f", argv[1]);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(3, 30); at(4, 31);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) DIE("socketpair");
    at(30, sv[0]); at(31, sv[1]); at(5, 30); at(6, 31);

    /* Fds the message carries are kept at 20+ until sent, clear of the fixed numbers 7, 8, 9. */
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    at(20, f);
    f = 20;
    if (write(f, "0123456789", 10) != 10 || lseek(f, 5, SEEK_SET) != 5) DIE("file");
    send_fds(4, "file", &f, 1);

    int p[2];
    if (pipe(p) || write(p[1], "piped", 5) != 5) DIE("pipe");
    at(21, p[0]);
    at(7, p[1]);
    p[0] = 21;
    send_fds(4, "pipe", &p[0], 1);
    close(p[0]);

    at(8, eventfd(7, 0));
    int e = 8;
    send_fds(4, "efd", &e, 1);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) DIE("socketpair");
    at(22, sv[0]);
    sv[0] = 22;
    at(9, sv[1]);
    if (send(9, "inside", 6, 0) != 6) DIE("send inside");
    send_fds(4, "sock", &sv[0], 1);
    close(sv[0]);

    int m = memfd_create("scm", 0);
    if (m < 0 || write(m, "memfd-data", 10) != 10) DIE("memfd");
    int two[2] = { m, dup(f) };
    send_fds(4, "two", two, 2);
    close(m);
    close(two[1]);
    close(f);

    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) DIE("socketpair");
    if (send(sv[1], "dg", 2, 0) != 2) DIE("send dg");
    send_fds(6, "rec", sv, 2);
    close(sv[0]);
    close(sv[1]);

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&mask);

    int got[2];
    if (recv_fds(3, "file", got, 1)) {
        f = got[0];
        CHECK("file", lseek(f, 0, SEEK_CUR) == 5, "offset %ld, expected 5", (long)lseek(f, 0, SEEK_CUR));
        expect_read(f, "567", "file");
    }
    if (recv_fds(3, "pipe", got, 1)) {
        expect_read(got[0], "piped", "pipe");
        CHECK("pipe", write(7, "more", 4) == 4, "write end");
        expect_read(got[0], "more", "pipe after restore");
    }
    if (recv_fds(3, "efd", got, 1)) {
        uint64_t v = 0;
        CHECK("eventfd", read(got[0], &v, 8) == 8 && v == 7, "counter %llu, expected 7", (unsigned long long)v);
        v = 3;
        CHECK("eventfd", write(8, &v, 8) == 8, "write");
        v = 0;
        CHECK("eventfd", read(got[0], &v, 8) == 8 && v == 3, "the task's fd 8 and the one in flight are not one eventfd (%llu)", (unsigned long long)v);
    }
    if (recv_fds(3, "sock", got, 1)) {
        expect_read(got[0], "inside", "socket in flight");
        CHECK("socket in flight", send(got[0], "reply", 5, 0) == 5, "send");
        expect_read(9, "reply", "socket in flight, its peer");
    }
    if (recv_fds(3, "two", got, 2)) {
        char buf[16] = {0};
        CHECK("memfd", pread(got[0], buf, 10, 0) == 10 && strcmp(buf, "memfd-data") == 0, "read '%s'", buf);
        CHECK("shared file", lseek(got[1], 0, SEEK_CUR) == 8, "offset %ld, expected 8 (one description with the first)", (long)lseek(got[1], 0, SEEK_CUR));
    }
    if (recv_fds(5, "rec", got, 2)) {
        expect_read(got[0], "dg", "datagram socket in flight");
        CHECK("datagram pair in flight", send(got[0], "x", 1, 0) == 1, "send");
        expect_read(got[1], "x", "datagram pair in flight, other end");
    }
    char c;
    CHECK("stream queue", recv(3, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "more queued than was sent");
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
