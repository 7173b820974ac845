/*
 * pipe_size DIR -- pipe sizes set with F_SETPIPE_SZ across a checkpoint.
 *
 * Pipe A is empty and 1 MiB, pipe B holds 100 bytes and is 256 KiB, pipe C is shrunk to one page.
 * Writes "ready PID" to DIR/ready; on SIGUSR1 checks each size (F_GETPIPE_SZ) and B's bytes, then
 * writes DIR/verdict.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "workload.h"

static int failures;
static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    int a[2], b[2], c[2];
    if (pipe(a) || pipe(b) || pipe(c))
        return 2;
    if (fcntl(a[1], F_SETPIPE_SZ, 1 << 20) < 0 || fcntl(b[1], F_SETPIPE_SZ, 256 << 10) < 0 || fcntl(c[1], F_SETPIPE_SZ, 4096) < 0) {
        perror("F_SETPIPE_SZ");
        return 2;
    }
    char data[100];
    memset(data, 'x', sizeof data);
    if (write(b[1], data, sizeof data) != sizeof data)
        return 2;
    char ready[32];
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(dir, "ready", ready);
    while (!got_usr1)
        sigsuspend(&wait_mask);

    CHECK("pipe A size", fcntl(a[0], F_GETPIPE_SZ) == 1 << 20, "%d", fcntl(a[0], F_GETPIPE_SZ));
    CHECK("pipe B size", fcntl(b[0], F_GETPIPE_SZ) == 256 << 10, "%d", fcntl(b[0], F_GETPIPE_SZ));
    CHECK("pipe C size", fcntl(c[0], F_GETPIPE_SZ) == 4096, "%d", fcntl(c[0], F_GETPIPE_SZ));
    char got[200];
    int n = (int)read(b[0], got, sizeof got);
    CHECK("pipe B data", n == (int)sizeof data && memcmp(got, data, sizeof data) == 0, "%d bytes", n);
    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
