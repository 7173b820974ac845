/*
 * sockets_filter -- classic BPF socket filters (SO_ATTACH_FILTER) and SO_BINDTODEVICE, which crisp restores.
 *
 * Prints "ready PID\n" on stdout, waits for SIGUSR1; then checks every socket and prints "PASS" or
 * "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 *
 * Fds: 3 UDP on 127.0.0.1, bound to device "lo", filter: drop packets of 100 bytes or more (UDP header
 * included), keep 3 bytes
 * of the others; 4 UDP connected to 3; 5 and 6 a unix datagram pair, 5's filter keeps 2 bytes of each
 * packet, and "queued" waits in 5's queue (kept as "qu") while the tree is dumped.
 * The check: each filter reads back instruction for instruction (SO_GET_FILTER), the device reads back,
 * and packets sent after the restore are filtered as before.
 * With the argument "ebpf", fd 3 gets an eBPF program (SO_ATTACH_BPF) instead, which a dump must refuse.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static struct sock_filter udp_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 100, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),
    BPF_STMT(BPF_RET | BPF_K, 8 + 3),  /* the UDP header is part of what the filter sees */
};
static struct sock_filter unix_filter[] = {
    BPF_STMT(BPF_RET | BPF_K, 2),
};

static void attach(int fd, struct sock_filter *f, unsigned short n)
{
    struct sock_fprog prog = { .len = n, .filter = f };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog)) {
        perror("SO_ATTACH_FILTER");
        exit(2);
    }
}

/* A one-instruction-pair eBPF socket filter (r0 = 0xffff; exit): keep every packet whole. */
static void attach_ebpf(int fd)
{
    struct bpf_insn insns[] = {
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0xffff },
        { .code = BPF_JMP | BPF_EXIT },
    };
    union bpf_attr attr = { 0 };
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (unsigned long)insns;
    attr.insn_cnt = 2;
    attr.license = (unsigned long)"GPL";
    int prog = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (prog < 0 || setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof prog)) {
        perror("SO_ATTACH_BPF");
        exit(2);
    }
    close(prog);
}

static void same_filter(int fd, struct sock_filter *want, unsigned short n, const char *name)
{
    struct sock_filter got[16];
    socklen_t len = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &len)) {
        FAIL(name, "SO_GET_FILTER: %s", strerror(errno));
        return;
    }
    CHECK(name, len == n, "filter has %u instructions, was %u", (unsigned)len, (unsigned)n);
    if (len != n)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, got, &len)) {
        FAIL(name, "SO_GET_FILTER: %s", strerror(errno));
        return;
    }
    CHECK(name, memcmp(got, want, n * sizeof *want) == 0, "filter instructions differ");
}

static void expect(int fd, const char *want, const char *name)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    CHECK(name, n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0, "received %zd bytes '%.*s', wanted '%s'",
          n, n > 0 ? (int)n : 0, buf, want);
}

int main(int argc, char **argv)
{
    int ebpf = argc > 1 && strcmp(argv[1], "ebpf") == 0;
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);

    workload_fd_at(3, socket(AF_INET, SOCK_DGRAM, 0), "socket");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (setsockopt(3, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) || bind(3, (struct sockaddr *)&a, sizeof a) ||
        getsockname(3, (struct sockaddr *)&a, &al)) {
        perror("bind");
        exit(2);
    }
    if (ebpf)
        attach_ebpf(3);
    else
        attach(3, udp_filter, 4);
    workload_fd_at(4, socket(AF_INET, SOCK_DGRAM, 0), "socket");
    if (connect(4, (struct sockaddr *)&a, sizeof a)) {
        perror("connect");
        exit(2);
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, pair)) {
        perror("socketpair");
        exit(2);
    }
    workload_fd_at(5, pair[0], "socketpair");
    workload_fd_at(6, pair[1], "socketpair");
    attach(5, unix_filter, 1);
    if (send(6, "queued", 6, 0) != 6) {
        perror("send");
        exit(2);
    }

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&wait_mask);

    same_filter(3, udp_filter, 4, "udp filter");
    same_filter(5, unix_filter, 1, "unix filter");
    char dev[16] = "";
    socklen_t dl = sizeof dev;
    CHECK("bound device", getsockopt(3, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) == 0 && strcmp(dev, "lo") == 0,
          "SO_BINDTODEVICE is '%s'", dev);

    expect(5, "qu", "queued unix packet");
    send(6, "xyz", 3, 0);
    expect(5, "xy", "unix packet after restore");
    char big[150];
    memset(big, 'b', sizeof big);
    send(4, "hello", 5, 0);
    expect(3, "hel", "udp packet after restore");
    send(4, big, sizeof big, 0);
    send(4, "abcd", 4, 0);
    expect(3, "abc", "udp packet after a dropped one");

    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
