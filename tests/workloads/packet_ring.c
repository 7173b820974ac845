/*
 * packet_ring -- an AF_PACKET socket with mmap'ed TPACKET_V2 rx and tx rings across a checkpoint.
 *
 * Prints "ready PID\n" on stdout and waits for SIGUSR1; then checks and prints "PASS" or "FAIL: ..." lines on
 * stderr (exit 0 / 1; 2 on setup error). Traffic is on lo with the local experimental ethertype 0x88b6.
 *
 * Fd 3: SOCK_RAW for 0x88b6, TPACKET_V2, an rx ring (4 blocks of 16 KiB, 2 KiB frames) and a tx ring (2 blocks),
 * bound to lo, both rings mapped at one address; fd 4: SOCK_DGRAM for 0x88b6. Before the checkpoint a frame
 * "before" lands in the rx ring and stays unread: as CRIU, a restored ring is a new, empty one.
 * The check: PACKET_VERSION, the mapping (same address and size, shared, of the socket fd 3 is), a frame sent
 * on lo afterwards appears in the rx ring (and "before" does not), and a frame put in the tx ring is sent.
 * "packet_ring closed": fd 3 is closed once the rings are mapped (only the mapping holds the socket); it then
 * just waits, for a dump to refuse it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

#define PROTO 0x88b6
#define BLOCK (16 << 10)
#define FRAME 2048
#define RX_BLOCKS 4
#define TX_BLOCKS 2
#define RX_SIZE (RX_BLOCKS * BLOCK)
#define TX_SIZE (TX_BLOCKS * BLOCK)
#define RX_FRAMES (RX_SIZE / FRAME)
#define TX_FRAMES (TX_SIZE / FRAME)

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void ring(int fd, int which, int blocks)
{
    struct tpacket_req r = { .tp_block_size = BLOCK, .tp_block_nr = blocks, .tp_frame_size = FRAME,
                             .tp_frame_nr = blocks * BLOCK / FRAME };
    if (setsockopt(fd, SOL_PACKET, which, &r, sizeof r))
        die("PACKET_RX/TX_RING");
}

static void send_dgram(int fd, int lo, const char *text)
{
    struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(PROTO), .sll_ifindex = lo, .sll_halen = 6 };
    if (sendto(fd, text, strlen(text), 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)strlen(text))
        die("sendto");
}

/* The rx ring's frame holding a packet whose payload (after the ethernet header) starts with TEXT, or -1. */
static int rx_frame_with(unsigned char *rx, const char *text)
{
    for (int i = 0; i < RX_FRAMES; i++) {
        struct tpacket2_hdr *h = (struct tpacket2_hdr *)(rx + i * FRAME);
        if (!(h->tp_status & TP_STATUS_USER))
            continue;
        unsigned char *data = (unsigned char *)h + h->tp_mac;
        if (h->tp_snaplen >= ETH_HLEN + strlen(text) && memcmp(data + ETH_HLEN, text, strlen(text)) == 0)
            return i;
    }
    return -1;
}

/* The maps line of the VMA starting at AT, or "" (LINE holds it). */
static const char *maps_line(void *at, char *line, size_t size)
{
    char want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)at);
    FILE *f = fopen("/proc/self/maps", "r");
    const char *found = "";
    while (f && fgets(line, size, f))
        if (strncmp(line, want, strlen(want)) == 0) {
            line[strcspn(line, "\n")] = 0;
            found = line;
            break;
        }
    if (f)
        fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    int lo = if_nametoindex("lo");

    workload_fd_at(3, socket(AF_PACKET, SOCK_RAW, htons(PROTO)), "socket");
    int v2 = TPACKET_V2;
    if (setsockopt(3, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2))
        die("PACKET_VERSION");
    ring(3, PACKET_RX_RING, RX_BLOCKS);
    ring(3, PACKET_TX_RING, TX_BLOCKS);
    struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(PROTO), .sll_ifindex = lo };
    if (bind(3, (struct sockaddr *)&a, sizeof a))
        die("bind");
    unsigned char *rx = mmap(NULL, RX_SIZE + TX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
    if (rx == MAP_FAILED)
        die("mmap");
    unsigned char *tx = rx + RX_SIZE;
    if (argc > 1 && strcmp(argv[1], "closed") == 0) {
        /* Only the mapping keeps the socket: a dump must refuse it (CRIU maps the task's fd at restore). */
        close(3);
        printf("ready %d %lx\n", getpid(), (unsigned long)rx);
        for (;;)
            pause();
    }
    workload_fd_at(4, socket(AF_PACKET, SOCK_DGRAM, htons(PROTO)), "socket");

    send_dgram(4, lo, "before");
    struct pollfd p = { .fd = 3, .events = POLLIN };
    for (int i = 0; i < 100 && rx_frame_with(rx, "before") < 0; i++)
        poll(&p, 1, 10);
    if (rx_frame_with(rx, "before") < 0) {
        fprintf(stderr, "the rx ring got no frame before the checkpoint\n");
        return 2;
    }

    printf("ready %d %lx\n", getpid(), (unsigned long)rx);
    while (!go)
        sigsuspend(&wait_mask);

    int version = -1;
    socklen_t vl = sizeof version;
    getsockopt(3, SOL_PACKET, PACKET_VERSION, &version, &vl);
    CHECK("version", version == TPACKET_V2, "PACKET_VERSION %d", version);

    char line[512], inode[64];
    struct stat st;
    fstat(3, &st);
    snprintf(inode, sizeof inode, "socket:[%lu]", (unsigned long)st.st_ino);
    const char *m = maps_line(rx, line, sizeof line);
    unsigned long start = 0, end = 0;
    char perms[8] = "";
    sscanf(m, "%lx-%lx %7s", &start, &end, perms);
    CHECK("mapping", end - start == RX_SIZE + TX_SIZE && perms[3] == 's' && strstr(m, inode),
          "the ring mapping is '%s' (want %d bytes, shared, of %s)", m, RX_SIZE + TX_SIZE, inode);

    CHECK("fresh ring", rx_frame_with(rx, "before") < 0, "the frame received before the checkpoint is still in the ring");
    send_dgram(4, lo, "after");
    for (int i = 0; i < 100 && rx_frame_with(rx, "after") < 0; i++)
        poll(&p, 1, 10);
    CHECK("rx ring", rx_frame_with(rx, "after") >= 0, "a frame sent on lo did not appear in the rx ring");

    /* A frame through the tx ring: its first frame's data, status SEND_REQUEST, then send() with no buffer. */
    struct tpacket2_hdr *h = (struct tpacket2_hdr *)tx;
    CHECK("tx ring", h->tp_status == TP_STATUS_AVAILABLE, "tx frame 0 status %u", h->tp_status);
    unsigned char *data = tx + TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
    memset(data, 0, ETH_HLEN);
    data[12] = PROTO >> 8;
    data[13] = PROTO & 0xff;
    memcpy(data + ETH_HLEN, "txring", 6);
    h->tp_len = ETH_HLEN + 6;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    CHECK("tx ring", send(3, NULL, 0, 0) == ETH_HLEN + 6, "send from the tx ring: %s", strerror(errno));
    int got = 0;
    char buf[64];
    for (int i = 0; i < 50 && !got; i++) {
        ssize_t n = recv(4, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 6 && memcmp(buf, "txring", 6) == 0)
            got = 1;
        else if (n < 0)
            usleep(10000);
    }
    CHECK("tx ring", got, "the frame put in the tx ring was not received");

    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
