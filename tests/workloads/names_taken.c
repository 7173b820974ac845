/*
 * names_taken -- files whose names the restore cannot simply open or bind again.
 *
 * argv[1] is a directory. Prints "ready PID CHILD\n" on stdout and waits for SIGUSR1; then checks and prints
 * "PASS" or "FAIL: ..." lines on stderr (exit 0 / 1; 2 on setup error).
 *
 * Fds: 3 /proc/self/status (this task's own /proc file) and 4 /proc/CHILD/stat (a child of the tree): both
 * exist only once the tree does. 5 a unix datagram socket bound to DIR/s whose file was then removed, and a
 * FIFO made on that same path since (6, read-write, with "fifo-data" unread); 7 a datagram socket connected
 * to 5 before its file went.
 * The check: 3 and 4 read what they name (this task's status, the child's stat); 5 keeps its name, 7 still
 * reaches it, and DIR/s is still the FIFO, with its data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static ssize_t read_at(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);

    pid_t child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    char path[4096];
    workload_fd_at(3, open("/proc/self/status", O_RDONLY), "open /proc/self/status");
    snprintf(path, sizeof path, "/proc/%d/stat", child);
    workload_fd_at(4, open(path, O_RDONLY), "open /proc/CHILD/stat");

    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/s", argv[1]);
    workload_fd_at(5, socket(AF_UNIX, SOCK_DGRAM, 0), "socket");
    if (bind(5, (struct sockaddr *)&a, sizeof a))
        die("bind");
    workload_fd_at(7, socket(AF_UNIX, SOCK_DGRAM, 0), "socket");
    if (connect(7, (struct sockaddr *)&a, sizeof a))
        die("connect");
    if (unlink(a.sun_path) || mkfifo(a.sun_path, 0600))
        die("mkfifo");
    workload_fd_at(6, open(a.sun_path, O_RDWR), "open fifo");
    if (write(6, "fifo-data", 9) != 9)
        die("write fifo");

    printf("ready %d %d\n", getpid(), child);
    while (!go)
        sigsuspend(&wait_mask);

    char buf[4096], want[64];
    read_at(3, buf, sizeof buf);
    snprintf(want, sizeof want, "\nPid:\t%d\n", getpid());
    CHECK("/proc/self/status", strstr(buf, want) != NULL, "does not say %s", want + 1);
    read_at(4, buf, sizeof buf);
    snprintf(want, sizeof want, "%d (", child);
    CHECK("/proc/CHILD/stat", strncmp(buf, want, strlen(want)) == 0, "reads '%.40s'", buf);

    struct sockaddr_un name = { 0 };
    socklen_t nl = sizeof name;
    CHECK("socket name", getsockname(5, (struct sockaddr *)&name, &nl) == 0 && strcmp(name.sun_path, a.sun_path) == 0,
          "fd 5 is bound to '%s'", name.sun_path);
    CHECK("connected", send(7, "dgram", 5, 0) == 5, "send on 7: %s", strerror(errno));
    ssize_t n = recv(5, buf, sizeof buf, MSG_DONTWAIT);
    CHECK("connected", n == 5 && memcmp(buf, "dgram", 5) == 0, "fd 5 got %zd bytes", n);
    struct stat st;
    CHECK("fifo", stat(a.sun_path, &st) == 0 && S_ISFIFO(st.st_mode), "%s is no longer the FIFO", a.sun_path);
    n = read(6, buf, sizeof buf);
    CHECK("fifo", n == 9 && memcmp(buf, "fifo-data", 9) == 0, "the FIFO gave %zd bytes", n);

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    if (!failures)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
