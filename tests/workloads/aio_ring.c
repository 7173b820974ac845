/*
 * aio_ring -- an AIO context (io_setup) with a used ring, restored at the same address.
 *
 * Protocol (like statecheck): submits six 4-byte reads of its own executable and reaps five, so the ring's
 * head and tail are 5 and 6 (one completed event not yet reaped); prints "ready PID CTX LEN\n" (the context
 * id = ring address, in hex, and the ring mapping's length) and waits for SIGUSR1. On it checks: the
 * [aio] mapping is at CTX with LEN bytes; head/tail are 5/6; io_getevents returns the sixth read's event;
 * a new read submitted on the same context completes with the right bytes; io_destroy works and the
 * mapping goes. A second context has gone round its ring once: head is nr - 1 and tail 1, two events
 * waiting across the wrap; after restore its head/tail are the same and io_getevents returns both, in order.
 * Prints "PASS" or "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

struct ring { unsigned id, nr, head, tail, magic, compat, incompat, header_length; };

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
#define DIE(what) do { perror(what); exit(2); } while (0)

static aio_context_t ctx, ctx2;
static char scratch_buf[4];

static char bufs[8][4];

/* N reads of 4 bytes on context C, their aio_data FIRST, FIRST + 1, ...: into bufs[FIRST + i] on ctx (the workload
 * checks what they read), into a scratch buffer on ctx2 (only the ring's indexes matter there). */
static int submit_on(aio_context_t c, int fd, int n, int first)
{
    struct iocb cbs[8], *ptrs[8];
    memset(cbs, 0, sizeof cbs);
    for (int i = 0; i < n; i++) {
        cbs[i].aio_data = first + i;
        cbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
        cbs[i].aio_fildes = fd;
        cbs[i].aio_buf = (unsigned long)(c == ctx ? bufs[first + i] : scratch_buf);
        cbs[i].aio_nbytes = 4;
        ptrs[i] = &cbs[i];
    }
    return syscall(SYS_io_submit, c, n, ptrs);
}

static int submit(int fd, int n, int first) { return submit_on(ctx, fd, n, first); }
static int submit2(int fd, int n, int first) { return submit_on(ctx2, fd, n, first); }

static int reap(struct io_event *ev, int min, int max)
{
    struct timespec t = { 10, 0 };
    return syscall(SYS_io_getevents, ctx, min, max, ev, &t);
}

/* The length of the [aio] mapping at ADDR in /proc/self/maps, 0 if none. */
static unsigned long aio_mapping(unsigned long addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long len = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s == addr && strstr(line, "/[aio]"))
            len = e - s;
    }
    if (f)
        fclose(f);
    return len;
}

int main(void)
{
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    workload_fd_at(3, open("/proc/self/exe", O_RDONLY | O_CLOEXEC), "open exe");
    if (syscall(SYS_io_setup, 8, &ctx))
        DIE("io_setup");
    struct io_event ev[8];
    if (submit(3, 6, 0) != 6)
        DIE("io_submit");
    if (reap(ev, 5, 5) != 5)
        DIE("io_getevents");
    /* The sixth has completed too (a buffered read is done at submit): it waits in the ring. */
    struct ring *r = (struct ring *)ctx;
    if (r->head != 5 || r->tail != 6) {
        fprintf(stderr, "setup: head %u tail %u\n", r->head, r->tail);
        exit(2);
    }
    /* ctx2: nr - 1 events submitted and reaped in batches, then two more waiting: tail wraps to 1. */
    if (syscall(SYS_io_setup, 8, &ctx2))
        DIE("io_setup 2");
    struct ring *r2 = (struct ring *)ctx2;
    unsigned nr2 = r2->nr, done = 0;
    while (done < nr2 - 1) {
        int n = nr2 - 1 - done < 8 ? nr2 - 1 - done : 8;
        struct timespec t = { 10, 0 };
        if (submit2(3, n, done) != n || syscall(SYS_io_getevents, ctx2, n, n, ev, &t) != n)
            DIE("ctx2 round");
        done += n;
    }
    if (submit2(3, 2, done) != 2 || r2->head != nr2 - 1 || r2->tail != 1) {
        fprintf(stderr, "setup: ctx2 head %u tail %u of %u\n", r2->head, r2->tail, nr2);
        exit(2);
    }
    unsigned long len = aio_mapping(ctx);
    if (!len)
        DIE("no [aio] mapping");
    printf("ready %d %lx %lu\n", getpid(), (unsigned long)ctx, len);
    while (!go)
        sigsuspend(&wait_mask);

    CHECK("mapping", aio_mapping(ctx) == len, "[aio] at %lx is %lu bytes, was %lu", (unsigned long)ctx, aio_mapping(ctx), len);
    CHECK("ring", r->head == 5 && r->tail == 6, "head %u tail %u, expected 5 and 6", r->head, r->tail);
    int n = reap(ev, 1, 8);
    CHECK("pending event", n == 1 && ev[0].data == 5 && ev[0].res == 4, "io_getevents gave %d, data %llu res %lld",
          n, n > 0 ? (unsigned long long)ev[0].data : 0ULL, n > 0 ? (long long)ev[0].res : 0LL);
    memset(bufs[6], 0, 4);
    int s = submit(3, 1, 6);
    CHECK("submit", s == 1, "io_submit on the restored context gave %d (%s)", s, strerror(errno));
    n = reap(ev, 1, 8);
    CHECK("new event", n == 1 && ev[0].data == 6 && ev[0].res == 4 && !memcmp(bufs[6], "\177ELF", 4),
          "io_getevents gave %d, data %llu res %lld", n, n > 0 ? (unsigned long long)ev[0].data : 0ULL, n > 0 ? (long long)ev[0].res : 0LL);
    CHECK("ring after", r->head == 7 && r->tail == 7, "head %u tail %u, expected 7 and 7", r->head, r->tail);
    CHECK("ring 2", r2->head == nr2 - 1 && r2->tail == 1, "ctx2 head %u tail %u, expected %u and 1", r2->head, r2->tail, nr2 - 1);
    struct timespec t = { 10, 0 };
    n = syscall(SYS_io_getevents, ctx2, 2, 8, ev, &t);
    CHECK("wrapped events", n == 2 && ev[0].data == nr2 - 1 && ev[1].data == nr2 && ev[0].res == 4 && ev[1].res == 4,
          "ctx2 io_getevents gave %d, data %llu %llu", n, n > 0 ? (unsigned long long)ev[0].data : 0ULL,
          n > 1 ? (unsigned long long)ev[1].data : 0ULL);
    CHECK("submit 2", submit2(3, 1, 1000) == 1 && syscall(SYS_io_getevents, ctx2, 1, 8, ev, &t) == 1 && ev[0].data == 1000,
          "a new read on ctx2 did not complete");
    CHECK("destroy 2", syscall(SYS_io_destroy, ctx2) == 0, "io_destroy ctx2: %s", strerror(errno));
    CHECK("destroy", syscall(SYS_io_destroy, ctx) == 0, "io_destroy: %s", strerror(errno));
    CHECK("unmapped", aio_mapping(ctx) == 0, "the [aio] mapping is still there after io_destroy");
    if (failures)
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}
