/*
 * leases -- file leases (F_SETLEASE) that crisp restores.
 *
 * argv[1] is a directory for the leased files. Prints "ready PID\n" on stdout and waits for SIGUSR1; then
 * checks and prints "PASS" or "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 *
 * Fds: 3 "rd" opened read-only with a read lease; 4 "wr" opened read-write with a write lease. SIGIO (the
 * lease-break signal) is blocked and waited for with sigtimedwait.
 * The check: F_GETLEASE gives each lease back, and each is still a lease of this process: a child that opens
 * the file in a conflicting way (O_NONBLOCK) gets EWOULDBLOCK and this process gets SIGIO to give it up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
static char rd[4096], wr[4096];

/* A child opens PATH with FLAGS|O_NONBLOCK: the lease must make that fail with EWOULDBLOCK, and the breaking
 * of the lease must signal this process (SIGIO); then the lease on FD is given up. */
static void breaks(int fd, const char *path, int flags, const char *name)
{
    pid_t child = fork();
    if (child == 0) {
        int f = open(path, flags | O_NONBLOCK);
        _exit(f < 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(name, WIFEXITED(status) && WEXITSTATUS(status) == 0, "a conflicting open did not wait for the lease");
    sigset_t io;
    sigemptyset(&io);
    sigaddset(&io, SIGIO);
    struct timespec ts = { 5, 0 };
    CHECK(name, sigtimedwait(&io, NULL, &ts) == SIGIO, "no SIGIO for the lease break: %s", strerror(errno));
    CHECK(name, fcntl(fd, F_SETLEASE, F_UNLCK) == 0, "giving the lease up: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t wait_mask, io;
    workload_begin(on_usr1, &wait_mask);
    sigemptyset(&io);
    sigaddset(&io, SIGIO);
    sigprocmask(SIG_BLOCK, &io, NULL);
    sigaddset(&wait_mask, SIGIO);   /* SIGIO stays blocked while waiting too */

    snprintf(rd, sizeof rd, "%s/rd", argv[1]);
    snprintf(wr, sizeof wr, "%s/wr", argv[1]);
    workload_fd_at(3, open(rd, O_RDONLY | O_CREAT, 0644), "open rd");
    workload_fd_at(4, open(wr, O_RDWR | O_CREAT, 0644), "open wr");
    if (fcntl(3, F_SETLEASE, F_RDLCK) || fcntl(4, F_SETLEASE, F_WRLCK)) {
        perror("F_SETLEASE");
        return 2;
    }

    printf("ready %d\n", getpid());
    while (!go)
        sigsuspend(&wait_mask);

    CHECK("read lease", fcntl(3, F_GETLEASE) == F_RDLCK, "F_GETLEASE gives %d", fcntl(3, F_GETLEASE));
    CHECK("write lease", fcntl(4, F_GETLEASE) == F_WRLCK, "F_GETLEASE gives %d", fcntl(4, F_GETLEASE));
    breaks(3, rd, O_WRONLY, "read lease");
    breaks(4, wr, O_RDONLY, "write lease");

    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
