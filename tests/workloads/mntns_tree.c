/*
 * A container's init: started by the test as `unshare --fork --pid --mount --uts --ipc --propagation private`
 * + a shell that builds the mounts under a busybox rootfs ROOT (bound onto itself) and runs `cd ROOT && exec
 * ./init`. As pid 1 it pivots into ROOT (pivot_root(".", "."), the old root detached), so its mount namespace is
 * the container's own. It keeps /data/hello (a tmpfs) open, copies /proc/self/mountinfo to /ext/mountinfo-0
 * (/ext is the external bind mount from the host), forks a child that writes a counter every 10 ms through an
 * fd it holds on /mnt/bind/counter (a bind mount of a path of the rootfs), and writes "ready 1 CHILD" to
 * /ext/ready.
 *
 * After SIGUSR1 (only inside sigsuspend: never lost) it copies /proc/self/mountinfo to /ext/mountinfo-after,
 * checks what the container's files look like (tmpfs contents with owners, modes, links and device nodes, the
 * masked file, the read-only bind, proc of its own pid namespace, its open fd), checks the child's counter goes
 * on, writes into the memory it shares with the child (anonymous shared, and a memfd mapped shared), sends
 * SIGUSR1 on to the child (which checks its fd still names /mnt/bind/counter, the file holds its last value and
 * it sees what init wrote) and writes /ext/verdict: PASS, or FAIL and what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"
#include "failures.h"

static const char *dir = "/ext";
static volatile sig_atomic_t go;
static sigset_t wait_mask;
/* Shared between init and child: anonymous shared memory, and a memfd mapped shared. */
static volatile long *shared_anon, *shared_memfd;

static void on_usr1(int s) { (void)s; go = 1; }

static void copy_mountinfo(const char *name)
{
    char buf[65536];
    int in = open("/proc/self/mountinfo", O_RDONLY);
    size_t have = 0;
    ssize_t n;
    while (in >= 0 && (n = read(in, buf + have, sizeof buf - 1 - have)) > 0)
        have += (size_t)n;
    if (in >= 0)
        close(in);
    buf[have] = 0;
    write_file(dir, name, buf);
}

static long read_counter(int fd)
{
    char buf[32] = {0};
    if (pread(fd, buf, sizeof buf - 1, 0) <= 0)
        return -1;
    return atol(buf);
}

static void expect_file(const char *path, const char *text, uid_t uid, gid_t gid, mode_t mode)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        fail("%s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != mode || st.st_uid != uid || st.st_gid != gid)
        fail("%s: mode 0%o owner %d:%d, not 0%o %d:%d", path, st.st_mode, st.st_uid, st.st_gid, mode, uid, gid);
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0 || strcmp(buf, text) != 0)
        fail("%s: holds '%s', not '%s'", path, buf, text);
    if (fd >= 0)
        close(fd);
}

static void expect_chr(const char *path, unsigned maj, unsigned min)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != maj || minor(st.st_rdev) != min)
        fail("%s: not char device %u:%u", path, maj, min);
}

static void check_files(int hello)
{
    char buf[64] = {0};
    if (pread(hello, buf, sizeof buf - 1, 0) != 6 || strcmp(buf, "hello\n") != 0)
        fail("open /data/hello reads '%s'", buf);
    struct stat a, b;
    if (fstat(hello, &a) != 0 || stat("/data/hello", &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        fail("the open /data/hello is not the file at /data/hello");
    expect_file("/data/hello", "hello\n", 0, 0, 0644);
    expect_file("/data/sub/deep", "deep\n", 1000, 1000, 0640);
    if (stat("/data/hard", &b) != 0 || b.st_ino != a.st_ino || b.st_nlink != 2)
        fail("/data/hard is not a second link of /data/hello");
    char link[64] = {0};
    if (readlink("/data/link", link, sizeof link - 1) < 0 || strcmp(link, "hello") != 0)
        fail("/data/link -> '%s', not hello", link);
    if (lstat("/data/fifo", &b) != 0 || !S_ISFIFO(b.st_mode))
        fail("/data/fifo is not a fifo");
    expect_chr("/dev/null", 1, 3);
    expect_chr("/dev/zero", 1, 5);
    memset(link, 0, sizeof link);
    if (readlink("/dev/fd", link, sizeof link - 1) < 0 || strcmp(link, "/proc/self/fd") != 0)
        fail("/dev/fd -> '%s'", link);
    expect_chr("/etc/secret", 1, 3);
    int fd = open("/etc/secret", O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf) != 0)
        fail("/etc/secret is not masked by /dev/null");
    if (fd >= 0)
        close(fd);
    expect_file("/mnt/ro/file", "ro\n", 0, 0, 0644);
    fd = open("/mnt/ro/file", O_WRONLY);
    if (fd >= 0 || errno != EROFS)
        fail("/mnt/ro/file opened for writing: %s", fd >= 0 ? "it worked" : strerror(errno));
    if (fd >= 0)
        close(fd);
    expect_file("/mnt/peer/deep", "deep\n", 1000, 1000, 0640);
    expect_file("/mnt/slave/hello", "hello\n", 0, 0, 0644);
    memset(link, 0, sizeof link);
    if (readlink("/proc/self", link, sizeof link - 1) < 0 || strcmp(link, "1") != 0)
        fail("/proc/self -> '%s': not the container's own proc", link);
    if (access("/dev/pts/ptmx", F_OK) != 0 || access("/dev/mqueue", F_OK) != 0)
        fail("/dev/pts/ptmx or /dev/mqueue missing");
}

static void child_main(void)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int fd = open("/mnt/bind/counter", O_RDWR);
    if (fd < 0)
        _exit(3);
    long counter = 0;
    for (;;) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", ++counter);
        if (pwrite(fd, buf, (size_t)n, 0) != n)
            _exit(4);
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (sigtimedwait(&usr1, NULL, &ts) == SIGUSR1)
            break;
    }
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat("/mnt/bind/counter", &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        fail("child: its fd is not /mnt/bind/counter");
    if (shared_anon[0] != 4242 || shared_memfd[0] != 4343)
        fail("child: shared memory holds %ld and %ld, not what init wrote after the restore", shared_anon[0], shared_memfd[0]);
    if (read_counter(fd) != counter)
        fail("child: the file holds %ld, not its counter %ld", read_counter(fd), counter);
    if (failures[0]) {
        write_file(dir, "fail-child", failures);
        _exit(1);
    }
    _exit(0);
}

int main(void)
{
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    if (getpid() != 1 || setsid() < 0)
        return 2;
    /* Fds the test runner's shell leaked (not CLOEXEC) lie on the host's mounts, which a container cannot hold. */
    syscall(SYS_close_range, 3, ~0U, 0);
    if (syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) {
        perror("pivot_root");
        return 2;
    }
    int hello = open("/data/hello", O_RDONLY);
    int counter = open("/mnt/bind/counter", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (hello < 0 || counter < 0)
        return 3;
    copy_mountinfo("mountinfo-0");
    shared_anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int memfd = memfd_create("mntns", 0);
    if (shared_anon == MAP_FAILED || memfd < 0 || ftruncate(memfd, 4096) != 0)
        return 3;
    shared_memfd = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (shared_memfd == MAP_FAILED)
        return 3;
    pid_t child = fork();
    if (child == 0)
        child_main();
    while (read_counter(counter) < 3)
        usleep(1000);
    char line[64];
    snprintf(line, sizeof line, "ready 1 %d\n", child);
    write_file(dir, "ready", line);

    while (!go)
        sigsuspend(&wait_mask);
    copy_mountinfo("mountinfo-after");
    check_files(hello);
    long before = read_counter(counter);
    usleep(200 * 1000);
    long after = read_counter(counter);
    if (before < 3 || after <= before)
        fail("the child's counter went from %ld to %ld in 200 ms", before, after);
    shared_anon[0] = 4242;
    shared_memfd[0] = 4343;
    kill(child, SIGUSR1);
    int status;
    pid_t r;
    while ((r = waitpid(child, &status, 0)) < 0 && errno == EINTR) { }
    if (r != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child %d ended with status 0x%x", child, status);
    char verdict[sizeof failures + 16];
    snprintf(verdict, sizeof verdict, failures[0] ? "FAIL %s\n" : "PASS\n", failures);
    write_file(dir, "verdict", verdict);
    return failures[0] ? 1 : 0;
}
