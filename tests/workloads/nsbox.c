/*
 * A small tree in namespaces of its own, started by the test as `unshare --fork --time --net ... nsbox DIR [net]`:
 * the root (its own session) forks one child that only waits. With "net" the root first brings `lo` up and gives it
 * 10.77.0.1/8 and fd77::1/64 (by `ip`), then holds a UDP socket bound to 10.77.0.1:7777 and a TCP listener on
 * [fd77::1]:7778 — inet sockets that only exist inside this network namespace; with "lo" it only brings lo up.
 * It writes "ready CHILDPID" to DIR/ready.
 *
 * The root reads CLOCK_MONOTONIC and CLOCK_BOOTTIME every 2 ms and remembers the largest step forward (gap) and
 * the largest step back (back) between two reads. On each SIGUSR1 it writes DIR/report-N (N = 1, 2, …):
 * "MONO_GAP MONO_BACK BOOT_GAP BOOT_BACK MONO BOOT LOFLAGS SOCKETS PIDSCG ADDRS…" (nanoseconds; LOFLAGS of
 * SIOCGIFFLAGS in hex; SOCKETS "ok" when both sockets still have their addresses, else what they have; PIDSCG the
 * pids cgroup /proc/self/cgroup shows inside (its cgroup namespace); ADDRS "inet A/P" and "inet6 A/P" of every
 * address of lo), then starts measuring anew. SIGTERM ends both tasks.
 *
 * With "veth" the root only brings lo up; the test then gives it a veth end with 10.79.0.2. On each report the root
 * (at the first one: binds a UDP socket to 10.79.0.2:7779) sends "hello N" from that socket to 10.79.0.1:7780, the
 * host's end; SOCKETS is then "ok" when the socket still has its address and the datagram went out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t report, stop;
static void on_usr1(int s) { (void)s; report = 1; }
static void on_term(int s) { (void)s; stop = 1; }

static long long now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int prefix_of(struct sockaddr *mask)
{
    int bits = 0;
    unsigned char *p = mask->sa_family == AF_INET ? (unsigned char *)&((struct sockaddr_in *)mask)->sin_addr
                                                  : (unsigned char *)&((struct sockaddr_in6 *)mask)->sin6_addr;
    int n = mask->sa_family == AF_INET ? 4 : 16;
    for (int i = 0; i < n; i++)
        bits += __builtin_popcount(p[i]);
    return bits;
}

static int udp = -1, tcp = -1, veth_mode;

static void veth_send(char *out, size_t size, int n)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7779) };
    inet_pton(AF_INET, "10.79.0.2", &a.sin_addr);
    if (udp < 0) {
        udp = socket(AF_INET, SOCK_DGRAM, 0);
        if (bind(udp, (struct sockaddr *)&a, sizeof a) != 0) {
            snprintf(out, size, "bind=%d", errno);
            close(udp);
            udp = -1;
            return;
        }
    }
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    char name[64] = "?";
    if (getsockname(udp, (struct sockaddr *)&got, &len) == 0)
        inet_ntop(AF_INET, &got.sin_addr, name, sizeof name);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(7780) };
    inet_pton(AF_INET, "10.79.0.1", &to.sin_addr);
    char msg[32];
    int m = snprintf(msg, sizeof msg, "hello %d", n);
    if (sendto(udp, msg, m, 0, (struct sockaddr *)&to, sizeof to) != m)
        snprintf(out, size, "sendto=%d", errno);
    else if (strcmp(name, "10.79.0.2") != 0 || ntohs(got.sin_port) != 7779)
        snprintf(out, size, "udp=%s:%d", name, ntohs(got.sin_port));
    else
        snprintf(out, size, "ok");
}

static void sockets_state(char *out, size_t size)
{
    if (udp < 0) {
        snprintf(out, size, "none");
        return;
    }
    struct sockaddr_in a;
    struct sockaddr_in6 b;
    socklen_t la = sizeof a, lb = sizeof b;
    char sa[64] = "?", sb[64] = "?";
    if (getsockname(udp, (struct sockaddr *)&a, &la) == 0)
        inet_ntop(AF_INET, &a.sin_addr, sa, sizeof sa);
    if (getsockname(tcp, (struct sockaddr *)&b, &lb) == 0)
        inet_ntop(AF_INET6, &b.sin6_addr, sb, sizeof sb);
    if (strcmp(sa, "10.77.0.1") == 0 && ntohs(a.sin_port) == 7777 && strcmp(sb, "fd77::1") == 0 && ntohs(b.sin6_port) == 7778)
        snprintf(out, size, "ok");
    else
        snprintf(out, size, "udp=%s:%d,tcp=[%s]:%d", sa, ntohs(a.sin_port), sb, ntohs(b.sin6_port));
}

/* The path of the pids hierarchy in /proc/self/cgroup ("-" when there is none). */
static void pids_cgroup(char *out, size_t size)
{
    snprintf(out, size, "-");
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, ":pids:");
        if (p) {
            p += 6;
            p[strcspn(p, "\n")] = 0;
            snprintf(out, size, "%s", p);
        }
    }
    fclose(f);
}

static void write_report(const char *dir, int n, long long mgap, long long mback, long long bgap, long long bback)
{
    char text[4096], socks[256], cg[1024];
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    unsigned flags = 0;
    if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
        flags = (unsigned short)ifr.ifr_flags;
    if (s >= 0)
        close(s);
    if (veth_mode)
        veth_send(socks, sizeof socks, n);
    else
        sockets_state(socks, sizeof socks);
    pids_cgroup(cg, sizeof cg);
    int len = snprintf(text, sizeof text, "%lld %lld %lld %lld %lld %lld %x %s %s", mgap, mback, bgap, bback,
                       now(CLOCK_MONOTONIC), now(CLOCK_BOOTTIME), flags, socks, cg);
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr || strcmp(i->ifa_name, "lo") != 0)
                continue;
            int family = i->ifa_addr->sa_family;
            if (family != AF_INET && family != AF_INET6)
                continue;
            char addr[64];
            void *raw = family == AF_INET ? (void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                                          : (void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
            inet_ntop(family, raw, addr, sizeof addr);
            len += snprintf(text + len, sizeof text - len, " %s %s/%d", family == AF_INET ? "inet" : "inet6", addr,
                            i->ifa_netmask ? prefix_of(i->ifa_netmask) : 0);
        }
        freeifaddrs(ifs);
    }
    snprintf(text + len, sizeof text - len, "\n");
    char name[32];
    snprintf(name, sizeof name, "report-%d", n);
    write_file(dir, name, text);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    setsid();
    veth_mode = argc > 2 && strcmp(argv[2], "veth") == 0;
    if (argc > 2 && (strcmp(argv[2], "lo") == 0 || veth_mode) && system("ip link set lo up") != 0)
        return 3;
    if (argc > 2 && strcmp(argv[2], "net") == 0) {
        if (system("ip link set lo up && ip addr add 10.77.0.1/8 dev lo && ip -6 addr add fd77::1/64 dev lo nodad") != 0)
            return 3;
        udp = socket(AF_INET, SOCK_DGRAM, 0);
        tcp = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7777) };
        inet_pton(AF_INET, "10.77.0.1", &a.sin_addr);
        struct sockaddr_in6 b = { .sin6_family = AF_INET6, .sin6_port = htons(7778) };
        inet_pton(AF_INET6, "fd77::1", &b.sin6_addr);
        if (bind(udp, (struct sockaddr *)&a, sizeof a) != 0 || bind(tcp, (struct sockaddr *)&b, sizeof b) != 0 || listen(tcp, 4) != 0)
            return 4;
    }
    pid_t child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    char ready[64];
    snprintf(ready, sizeof ready, "ready %d\n", child);
    write_file(dir, "ready", ready);

    long long mlast = now(CLOCK_MONOTONIC), blast = now(CLOCK_BOOTTIME);
    long long mgap = 0, mback = 0, bgap = 0, bback = 0;
    int reports = 0;
    struct timespec step = { 0, 2000000 };
    while (!stop) {
        nanosleep(&step, NULL);
        long long m = now(CLOCK_MONOTONIC), b = now(CLOCK_BOOTTIME);
        if (m - mlast > mgap) mgap = m - mlast;
        if (mlast - m > mback) mback = mlast - m;
        if (b - blast > bgap) bgap = b - blast;
        if (blast - b > bback) bback = blast - b;
        mlast = m;
        blast = b;
        if (report) {
            report = 0;
            write_report(dir, ++reports, mgap, mback, bgap, bback);
            mgap = mback = bgap = bback = 0;
        }
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
