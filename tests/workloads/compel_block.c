/* Blocks in a syscall we interrupt with a seize. "read": read(0) then echo "got:DATA", exit 0;
 * "sleep MS": nanosleep, exit 0 if it returned 0 after at least MS (3 = EINTR leaked, 4 = too short). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "read") == 0) {
        char buf[64];
        if (write(1, "R", 1) != 1)
            return 2;
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0)
            return errno == EINTR ? 3 : 5;
        (void)!write(1, "got:", 4);
        (void)!write(1, buf, n);
        return 0;
    }
    long ms = argc > 2 ? atol(argv[2]) : 1000;
    struct timespec t0, t1, req = { ms / 1000, (ms % 1000) * 1000000L };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (write(1, "R", 1) != 1)
        return 2;
    if (nanosleep(&req, NULL) != 0)
        return errno == EINTR ? 3 : 5;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long elapsed = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    return elapsed >= ms ? 0 : 4;
}
