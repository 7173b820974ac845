/*
 * counter FILE [PERIOD_MS]  -- continuity workload.
 *
 * Appends "0\n", "1\n", "2\n", ... to FILE (created/truncated at start, opened
 * O_WRONLY|O_APPEND), one line per PERIOD_MS milliseconds (default 200), each
 * line with a single write(2). The counter lives only in this process's memory,
 * so after a checkpoint/restore the sequence must go on without a gap or repeat.
 *
 * Protocol: after the first line is written prints "ready\n" on stdout. On
 * SIGUSR1 stops, re-reads FILE and checks it is exactly 0..N-1 in order, where
 * N is the in-memory counter; prints PASS or FAIL: ... on stderr, exits 0 / 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

static int verify(const char *path, long n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL: counter: reopen %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[64];
    long expect = 0;
    while (fgets(line, sizeof line, f)) {
        char *end;
        long v = strtol(line, &end, 10);
        if (end == line || *end != '\n') {
            fprintf(stderr, "FAIL: counter: line %ld is malformed: '%s'\n", expect + 1, line);
            fclose(f);
            return 1;
        }
        if (v != expect) {
            fprintf(stderr, "FAIL: counter: line %ld holds %ld, expected %ld (gap or repeat)\n",
                    expect + 1, v, expect);
            fclose(f);
            return 1;
        }
        expect++;
    }
    fclose(f);
    if (expect != n) {
        fprintf(stderr, "FAIL: counter: file has %ld lines, in-memory counter is %ld\n", expect, n);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: counter FILE [PERIOD_MS]\n");
        return 2;
    }
    const char *path = argv[1];
    long period = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    if (period <= 0)
        period = 200;

    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "counter: open %s: %s\n", path, strerror(errno));
        return 2;
    }
    long i = 0;
    int announced = 0;
    while (!got_usr1) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        ssize_t w;
        do
            w = write(fd, buf, len);
        while (w < 0 && errno == EINTR);
        if (w != len) {
            fprintf(stderr, "FAIL: counter: write of %ld returned %zd (%s)\n", i, w,
                    w < 0 ? strerror(errno) : "short");
            return 1;
        }
        i++;
        if (!announced) {
            printf("ready\n");
            fflush(stdout);
            announced = 1;
        }
        struct timespec ts = {period / 1000, (period % 1000) * 1000000L};
        while (!got_usr1 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    close(fd);
    if (verify(path, i))
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}
