/*
 * netlink_sock -- AF_NETLINK sockets that crisp restores.
 *
 * Prints "ready PID\n" on stdout and waits for SIGUSR1; then checks every socket and prints "PASS" or
 * "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 *
 * Fds (all NETLINK_ROUTE): 3 bound by the kernel's choice of port id, listening on groups 13 and 21 (quiet
 * ones: DECnet and Phonet addresses) plus group 34 (past the first 32, joined with NETLINK_ADD_MEMBERSHIP);
 * 4 bound to a port id of its own, with NETLINK_EXT_ACK and NETLINK_GET_STRICT_CHK on; 5 never bound;
 * 6 connected to fd 3's port id.
 * The check: the same port ids, groups (NETLINK_LIST_MEMBERSHIPS), flags and peer; fd 4 can still ask the
 * kernel for its links and gets answers addressed to its port id; a message sent on 6 arrives on 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static struct sockaddr_nl name_of(int fd)
{
    struct sockaddr_nl a = { 0 };
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return a;
}

static int flag(int fd, int opt)
{
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, SOL_NETLINK, opt, &v, &l);
    return v;
}

static void memberships(int fd, unsigned int out[2])
{
    socklen_t l = 2 * sizeof(unsigned int);
    out[0] = out[1] = 0;
    getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, out, &l);
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

int main(void)
{
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);

    workload_fd_at(3, socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), "socket");
    struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = (1u << 12) | (1u << 20) };
    if (bind(3, (struct sockaddr *)&a, sizeof a))
        die("bind 3");
    int group = 34;
    if (setsockopt(3, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group))
        die("NETLINK_ADD_MEMBERSHIP");

    workload_fd_at(4, socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE), "socket");
    struct sockaddr_nl own = { .nl_family = AF_NETLINK, .nl_pid = 0x40000000u | (unsigned)getpid() };
    int one = 1;
    if (bind(4, (struct sockaddr *)&own, sizeof own) ||
        setsockopt(4, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) ||
        setsockopt(4, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one))
        die("socket 4");

    workload_fd_at(5, socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), "socket");

    workload_fd_at(6, socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), "socket");
    struct sockaddr_nl to3 = { .nl_family = AF_NETLINK, .nl_pid = name_of(3).nl_pid };
    if (connect(6, (struct sockaddr *)&to3, sizeof to3))
        die("connect 6");

    struct sockaddr_nl before[7];
    for (int fd = 3; fd <= 6; fd++)
        before[fd] = name_of(fd);
    unsigned int groups_before[2];
    memberships(3, groups_before);

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&wait_mask);

    for (int fd = 3; fd <= 6; fd++) {
        struct sockaddr_nl now = name_of(fd);
        CHECK("port id", now.nl_pid == before[fd].nl_pid, "fd %d has port id %u, had %u", fd, now.nl_pid, before[fd].nl_pid);
        CHECK("groups", now.nl_groups == before[fd].nl_groups, "fd %d has groups %#x, had %#x", fd, now.nl_groups, before[fd].nl_groups);
    }
    unsigned int groups_now[2];
    memberships(3, groups_now);
    CHECK("memberships", memcmp(groups_now, groups_before, sizeof groups_now) == 0,
          "fd 3 is in groups %#x %#x, was in %#x %#x", groups_now[0], groups_now[1], groups_before[0], groups_before[1]);
    CHECK("flags", flag(4, NETLINK_EXT_ACK) == 1 && flag(4, NETLINK_GET_STRICT_CHK) == 1, "fd 4 lost its flags");
    CHECK("flags", flag(3, NETLINK_EXT_ACK) == 0, "fd 3 gained NETLINK_EXT_ACK");

    struct sockaddr_nl peer = { 0 };
    socklen_t pl = sizeof peer;
    CHECK("peer", getpeername(6, (struct sockaddr *)&peer, &pl) == 0 && peer.nl_pid == before[3].nl_pid,
          "fd 6 is connected to port %u, was to %u", peer.nl_pid, before[3].nl_pid);

    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
    } req = { .h = { .nlmsg_len = sizeof req, .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 7 } };
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    CHECK("request", sendto(4, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) == sizeof req, "send: %s", strerror(errno));
    char buf[32768];
    ssize_t n = recv(4, buf, sizeof buf, 0);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    CHECK("request", n >= (ssize_t)sizeof *h && h->nlmsg_seq == 7 && h->nlmsg_pid == before[4].nl_pid &&
          (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == NLMSG_DONE),
          "RTM_GETLINK answer: %zd bytes, type %d, seq %u, to port %u", n, n > 0 ? h->nlmsg_type : -1, n > 0 ? h->nlmsg_seq : 0, n > 0 ? h->nlmsg_pid : 0);

    struct nlmsghdr hello = { .nlmsg_len = sizeof hello, .nlmsg_type = NLMSG_NOOP, .nlmsg_seq = 42 };
    CHECK("unicast", send(6, &hello, sizeof hello, 0) == sizeof hello, "send on 6: %s", strerror(errno));
    n = recv(3, buf, sizeof buf, MSG_DONTWAIT);
    CHECK("unicast", n == sizeof hello && ((struct nlmsghdr *)buf)->nlmsg_seq == 42, "fd 3 got %zd bytes from 6", n);

    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
