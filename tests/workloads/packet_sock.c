/*
 * packet_sock -- AF_PACKET sockets that crisp restores.
 *
 * Prints "ready PID\n" on stdout and waits for SIGUSR1; then checks and prints "PASS" or "FAIL: ..." lines on
 * stderr (exit 0 / 1; 2 on setup error). All traffic is on lo with the local experimental ethertype 0x88b5, so
 * nothing else reaches these sockets.
 *
 * Fds: 3 SOCK_RAW bound to lo for 0x88b5, TPACKET_V2, PACKET_AUXDATA, PACKET_ORIGDEV, a reserve of 64 and a
 * promiscuous + a multicast membership on lo; 4 SOCK_DGRAM for 0x88b5, not bound to a device; 5 SOCK_RAW bound
 * to lo for 0x88b5 in fanout group 77 (hash).
 * The check: each option and binding reads back, and a frame fd 4 sends on lo arrives at 3 and 5.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

#define PROTO 0x88b5

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void opt(int fd, int name, int value)
{
    if (setsockopt(fd, SOL_PACKET, name, &value, sizeof value))
        die("setsockopt");
}

static int get(int fd, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, SOL_PACKET, name, &v, &l);
    return v;
}

static void bind_lo(int fd, int lo)
{
    struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(PROTO), .sll_ifindex = lo };
    if (bind(fd, (struct sockaddr *)&a, sizeof a))
        die("bind");
}

static void expect_frame(int fd, const char *name)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    CHECK(name, n == ETH_HLEN + 4 && memcmp(buf + ETH_HLEN, "ping", 4) == 0, "fd %d received %zd bytes", fd, n);
}

int main(void)
{
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    int lo = if_nametoindex("lo");

    workload_fd_at(3, socket(AF_PACKET, SOCK_RAW, htons(PROTO)), "socket");
    opt(3, PACKET_VERSION, TPACKET_V2);
    opt(3, PACKET_RESERVE, 64);
    bind_lo(3, lo);
    opt(3, PACKET_AUXDATA, 1);
    opt(3, PACKET_ORIGDEV, 1);
    struct packet_mreq promisc = { .mr_ifindex = lo, .mr_type = PACKET_MR_PROMISC };
    struct packet_mreq multi = { .mr_ifindex = lo, .mr_type = PACKET_MR_MULTICAST, .mr_alen = 6,
                                 .mr_address = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb } };
    if (setsockopt(3, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof promisc) ||
        setsockopt(3, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &multi, sizeof multi))
        die("PACKET_ADD_MEMBERSHIP");

    workload_fd_at(4, socket(AF_PACKET, SOCK_DGRAM, htons(PROTO)), "socket");

    workload_fd_at(5, socket(AF_PACKET, SOCK_RAW, htons(PROTO)), "socket");
    bind_lo(5, lo);
    opt(5, PACKET_FANOUT, 77 | (PACKET_FANOUT_HASH << 16));

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&wait_mask);

    struct sockaddr_ll a = { 0 };
    socklen_t al = sizeof a;
    CHECK("binding", getsockname(3, (struct sockaddr *)&a, &al) == 0 && a.sll_ifindex == lo && a.sll_protocol == htons(PROTO),
          "fd 3 bound to interface %d protocol %#x", a.sll_ifindex, ntohs(a.sll_protocol));
    CHECK("options", get(3, PACKET_VERSION) == TPACKET_V2 && get(3, PACKET_RESERVE) == 64 && get(3, PACKET_AUXDATA) == 1 &&
          get(3, PACKET_ORIGDEV) == 1, "fd 3: version %d reserve %d auxdata %d origdev %d", get(3, PACKET_VERSION),
          get(3, PACKET_RESERVE), get(3, PACKET_AUXDATA), get(3, PACKET_ORIGDEV));
    CHECK("options", get(4, PACKET_VERSION) == TPACKET_V1 && get(4, PACKET_AUXDATA) == 0, "fd 4 gained options");
    CHECK("fanout", get(5, PACKET_FANOUT) == (77 | (PACKET_FANOUT_HASH << 16)), "fd 5 fanout %#x", get(5, PACKET_FANOUT));

    struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(PROTO), .sll_ifindex = lo, .sll_halen = 6 };
    CHECK("send", sendto(4, "ping", 4, 0, (struct sockaddr *)&to, sizeof to) == 4, "send on 4: %s", strerror(errno));
    usleep(20000);
    expect_frame(3, "bound raw socket");
    expect_frame(5, "fanout socket");

    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
