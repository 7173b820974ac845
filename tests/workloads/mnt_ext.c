/*
 * A container whose external bind mounts keep their host propagation: `mnt_ext ROOTFS SHARED SLAVE`, started
 * by the test in the host's mount namespace. It clones the host mounts at SHARED and SLAVE (open_tree
 * OPEN_TREE_CLONE: a clone is in its source's peer group and has its master), then unshares mount and pid
 * namespaces, makes everything it inherited private and forks pid 1 of the new pid namespace, which takes a
 * session of its own, binds ROOTFS onto itself, attaches the clones at ROOTFS/shared and ROOTFS/slave (move_mount:
 * they stay a peer of SHARED's group and a slave of SLAVE's master), pivots into ROOTFS (the old root detached) and
 * execs itself again as /init (its executable then lies on the container's root), which writes a counter to
 * /counter every 10 ms and "ready" to /ready once the first value is there. The outer process waits for it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 4
#endif

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void attach(int fd, const char *root, const char *name)
{
    char target[4096];
    snprintf(target, sizeof target, "%s/%s", root, name);
    if (syscall(SYS_move_mount, fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die(target);
    close(fd);
}

/* pid 1 after the pivot, run again from the rootfs (its executable then lies on the container's own root). */
static void counter(void) __attribute__((noreturn));
static void counter(void)
{
    int out = open("/counter", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        die("/counter");
    for (long n = 1;; n++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", n);
        if (pwrite(out, buf, len, 0) != len)
            die("write /counter");
        if (n == 1) {
            int ready = open("/ready", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (ready < 0 || write(ready, "ready\n", 6) != 6)
                die("/ready");
            close(ready);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--pid1") == 0)
        counter();
    if (argc != 4) {
        fprintf(stderr, "usage: mnt_ext ROOTFS SHARED SLAVE\n");
        return 2;
    }
    const char *root = argv[1];
    int shared = syscall(SYS_open_tree, AT_FDCWD, argv[2], OPEN_TREE_CLONE | O_CLOEXEC);
    int slave = syscall(SYS_open_tree, AT_FDCWD, argv[3], OPEN_TREE_CLONE | O_CLOEXEC);
    if (shared < 0 || slave < 0)
        die("open_tree");
    if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
        die("unshare");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die("make / rprivate");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0) {
        close(shared);
        close(slave);
        int status;
        while (waitpid(pid, &status, 0) < 0)
            ;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (setsid() < 0)
        die("setsid");
    if (mount(root, root, NULL, MS_BIND, NULL) < 0)
        die("bind rootfs");
    attach(shared, root, "shared");
    attach(slave, root, "slave");
    if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        die("pivot");
    execl("/init", "init", "--pid1", (char *)NULL);
    die("exec /init");
}
