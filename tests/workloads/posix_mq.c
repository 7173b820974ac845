/*
 * posix_mq DIR ns|host -- POSIX message queues (mq_overview(7)) that must come back as they were.
 *   q1 "/crisp-pmq1-PID": 8 messages of 128 bytes, mode 0640, owner 1234:2345, open O_RDWR, holding
 *      "a" (prio 1), "b" (prio 5), "c" (prio 1);
 *   q2 "/crisp-pmq2-PID": default attributes, open O_WRONLY|O_NONBLOCK, holding "x" (prio 0);
 *   q3 "/crisp-pmq3-PID" (ns only: run in an IPC namespace of its own): 4 x 64 bytes, "z" (prio 7), and no fd
 *      open on it, so only the namespace holds it.
 * Writes "ready PID" to DIR/ready and waits for SIGUSR1; then checks each queue's attributes, owner, mode, the fds'
 * flags, and receives the messages in the kernel's order (priority, then arrival), sends and receives one more on
 * q1, and writes PASS or FAIL to DIR/verdict (failures to DIR/failures). In host mode it unlinks its queues at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <string.h>
#include <sys/stat.h>
#define WORKLOAD_COUNTED_CHECKS
static int failures;
#include "workload.h"

static void on_usr1(int sig) { (void)sig; }

static void expect(const char *what, mqd_t q, const char *text, unsigned prio, long size)
{
    char buf[8192];
    unsigned got = 0;
    ssize_t n = mq_receive(q, buf, size, &got);
    CHECK(what, n == (ssize_t)strlen(text) && memcmp(buf, text, n) == 0 && got == prio,
          "received %zd bytes '%.*s' prio %u (errno %d), expected '%s' prio %u", n, n > 0 ? (int)n : 0, buf, got,
          n < 0 ? errno : 0, text, prio);
}

static void attrs(const char *what, mqd_t q, long maxmsg, long msgsize, long cur)
{
    struct mq_attr a;
    CHECK(what, mq_getattr(q, &a) == 0 && a.mq_maxmsg == maxmsg && a.mq_msgsize == msgsize && a.mq_curmsgs == cur,
          "maxmsg %ld msgsize %ld curmsgs %ld, expected %ld %ld %ld", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, maxmsg,
          msgsize, cur);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[1];
    int ns = strcmp(argv[2], "ns") == 0;
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    char log[4096];
    snprintf(log, sizeof log, "%s/failures", dir);
    if (!freopen(log, "w", stderr))
        return 2;
    setvbuf(stderr, NULL, _IONBF, 0);
    char n1[64], n2[64], n3[64];
    snprintf(n1, sizeof n1, "/crisp-pmq1-%d", getpid());
    snprintf(n2, sizeof n2, "/crisp-pmq2-%d", getpid());
    snprintf(n3, sizeof n3, "/crisp-pmq3-%d", getpid());

    struct mq_attr a1 = {.mq_maxmsg = 8, .mq_msgsize = 128};
    mqd_t q1 = mq_open(n1, O_CREAT | O_EXCL | O_RDWR, 0640, &a1);
    mqd_t q2 = mq_open(n2, O_CREAT | O_EXCL | O_WRONLY | O_NONBLOCK, 0600, NULL);
    if (q1 == (mqd_t)-1 || q2 == (mqd_t)-1) {
        perror("mq_open");
        return 2;
    }
    if (fchmod(q1, 0640) || fchown(q1, 1234, 2345)) {
        perror("q1 owner");
        return 2;
    }
    if (mq_send(q1, "a", 1, 1) || mq_send(q1, "b", 1, 5) || mq_send(q1, "c", 1, 1) || mq_send(q2, "x", 1, 0)) {
        perror("mq_send");
        return 2;
    }
    struct mq_attr defaults;
    mq_getattr(q2, &defaults);
    if (ns) {
        struct mq_attr a3 = {.mq_maxmsg = 4, .mq_msgsize = 64};
        mqd_t q3 = mq_open(n3, O_CREAT | O_EXCL | O_WRONLY, 0604, &a3);
        if (q3 == (mqd_t)-1 || mq_send(q3, "z", 1, 7) || mq_close(q3)) {
            perror("q3");
            return 2;
        }
    }
    char ready[32];
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(dir, "ready", ready);
    sigsuspend(&wait_mask);

    attrs("q1 attributes", q1, 8, 128, 3);
    struct stat st;
    CHECK("q1 owner and mode", fstat(q1, &st) == 0 && st.st_uid == 1234 && st.st_gid == 2345 && (st.st_mode & 07777) == 0640,
          "uid %u gid %u mode %o", st.st_uid, st.st_gid, st.st_mode & 07777);
    CHECK("q1 flags", (fcntl(q1, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_RDWR, "flags 0%o", fcntl(q1, F_GETFL));
    expect("q1 first", q1, "b", 5, 128);
    expect("q1 second", q1, "a", 1, 128);
    expect("q1 third", q1, "c", 1, 128);
    CHECK("q1 send", mq_send(q1, "n", 1, 3) == 0, "errno %d", errno);
    expect("q1 new", q1, "n", 3, 128);

    CHECK("q2 flags", (fcntl(q2, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == (O_WRONLY | O_NONBLOCK), "flags 0%o", fcntl(q2, F_GETFL));
    attrs("q2 attributes", q2, defaults.mq_maxmsg, defaults.mq_msgsize, 1);
    mqd_t r2 = mq_open(n2, O_RDONLY | O_NONBLOCK);
    CHECK("q2 by name", r2 != (mqd_t)-1, "errno %d", errno);
    if (r2 != (mqd_t)-1)
        expect("q2 message", r2, "x", 0, defaults.mq_msgsize);

    if (ns) {
        mqd_t q3 = mq_open(n3, O_RDONLY | O_NONBLOCK);
        CHECK("q3 by name", q3 != (mqd_t)-1, "errno %d", errno);
        if (q3 != (mqd_t)-1) {
            attrs("q3 attributes", q3, 4, 64, 1);
            CHECK("q3 mode", fstat(q3, &st) == 0 && (st.st_mode & 07777) == 0604, "mode %o", st.st_mode & 07777);
            expect("q3 message", q3, "z", 7, 64);
        }
    } else {
        mq_unlink(n1);
        mq_unlink(n2);
    }
    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return 0;
}
