/*
 * files_basic -- a parent and a child holding the kinds of fds crisp's Files/Fs carry.
 *
 * Protocol: sets up (in a fresh /tmp/crisp-files-XXXXXX, its cwd, umask 027), prints
 * "ready PID CHILDPID DIR\n" on stdout, then blocks reading a line from stdin. On
 * "check\n" it verifies every fd (offset, flags, FD_CLOEXEC, pipe contents), wakes the
 * child (SIGUSR1), which checks its pipe, then prints "PASS\n" or "FAIL: what\n" lines
 * and exits 0/1. Argument "userfaultfd" also opens a userfaultfd (an unsupported kind).
 *
 * Fds: 3 rw.dat O_RDWR at 1234; 4 app.dat O_WRONLY|O_APPEND; 5 /dev/null O_WRONLY;
 * 6,7 dup.dat O_RDWR (dup'ed) at 100; 8 ro.dat O_RDONLY|O_CLOEXEC at 10;
 * 9,10 pipe to itself holding "self-data" unread, read end O_NONBLOCK;
 * 11 write end of a pipe to the child holding "to-child" unread (the child has the read end).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int failed;
#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); failed = 1; } while (0)

static void at(int want, int fd)
{
    if (fd != want && (dup2(fd, want) != want || close(fd))) {
        perror("dup2");
        exit(2);
    }
}

static void write_file(const char *name, int n)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    for (int i = 0; i < n; i++)
        if (write(fd, "abcdefghijklmnopqrstuvwxyz" + i % 26, 1) != 1)
            exit(2);
    close(fd);
}

static void expect(int fd, off_t off, int flags, int cloexec)
{
    off_t o = lseek(fd, 0, SEEK_CUR);
    int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
    if (fl < 0)
        { FAIL("fd %d closed", fd); return; }
    if (off >= 0 && o != off)
        FAIL("fd %d offset %ld, expected %ld", fd, (long)o, (long)off);
    if ((fl & (O_ACCMODE | O_APPEND | O_NONBLOCK)) != flags)
        FAIL("fd %d flags %#o, expected %#o", fd, fl & (O_ACCMODE | O_APPEND | O_NONBLOCK), flags);
    if (!!(fdf & FD_CLOEXEC) != cloexec)
        FAIL("fd %d FD_CLOEXEC %d, expected %d", fd, !!(fdf & FD_CLOEXEC), cloexec);
}

static void on_usr1(int sig) { (void)sig; }

static int child_main(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigsuspend(&none);
    char buf[32] = {0};
    int fl = fcntl(12, F_GETFL);
    fcntl(12, F_SETFL, fl | O_NONBLOCK);
    ssize_t r = read(12, buf, sizeof buf - 1);
    if (r != 8 || memcmp(buf, "to-child", 8)) {
        printf("FAIL: child pipe read %zd '%s', expected 'to-child'\n", r, buf);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    syscall(SYS_close_range, 3, ~0U, 0);
    setvbuf(stdout, NULL, _IONBF, 0);
    char dir[] = "/tmp/crisp-files-XXXXXX";
    if (!mkdtemp(dir) || chdir(dir))
        return 2;
    umask(027);
    write_file("rw.dat", 2000);
    write_file("ro.dat", 100);
    write_file("dup.dat", 300);
    at(3, open("rw.dat", O_RDWR));
    lseek(3, 1234, SEEK_SET);
    at(4, open("app.dat", O_WRONLY | O_CREAT | O_APPEND, 0640));
    if (write(4, "first\n", 6) != 6)
        return 2;
    at(5, open("/dev/null", O_WRONLY));
    at(6, open("dup.dat", O_RDWR));
    at(7, dup(6));
    lseek(6, 100, SEEK_SET);
    at(8, open("ro.dat", O_RDONLY | O_CLOEXEC));
    fcntl(8, F_SETFD, FD_CLOEXEC);
    lseek(8, 10, SEEK_SET);
    int p[2];
    if (pipe(p))
        return 2;
    at(20, p[0]);
    at(21, p[1]);
    at(9, dup(20));
    at(10, dup(21));
    close(20);
    close(21);
    fcntl(9, F_SETFL, O_NONBLOCK);
    if (write(10, "self-data", 9) != 9)
        return 2;
    if (pipe(p))
        return 2;
    at(20, p[0]);
    at(21, p[1]);
    signal(SIGUSR1, on_usr1);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int sync[2];   /* the child says its fds are in place, so "ready" means the whole tree is */
    if (pipe(sync))
        return 2;
    at(30, sync[0]);
    at(31, sync[1]);
    pid_t child = fork();
    if (child == 0) {
        for (int fd = 3; fd < 20; fd++)
            close(fd);
        at(12, 20);
        close(21);
        close(30);
        if (write(31, "k", 1) != 1)
            return 2;
        close(31);
        return child_main();
    }
    close(31);
    char k;
    if (read(30, &k, 1) != 1)
        return 2;
    close(30);
    at(11, 21);
    close(20);
    if (write(11, "to-child", 8) != 8)
        return 2;
    if (argc > 1 && !strcmp(argv[1], "userfaultfd"))
        at(13, (int)syscall(SYS_userfaultfd, O_CLOEXEC));
    printf("ready %d %d %s\n", getpid(), child, dir);

    char line[64];
    ssize_t n = read(0, line, sizeof line);
    if (n < 5 || memcmp(line, "check", 5))
        return 2;

    expect(3, 1234, O_RDWR, 0);
    expect(4, -1, O_WRONLY | O_APPEND, 0);
    expect(5, 0, O_WRONLY, 0);
    expect(6, 100, O_RDWR, 0);
    expect(7, 100, O_RDWR, 0);
    expect(8, 10, O_RDONLY, 1);
    expect(9, -1, O_RDONLY | O_NONBLOCK, 0);
    expect(10, -1, O_WRONLY, 0);
    expect(11, -1, O_WRONLY, 0);
    lseek(6, 200, SEEK_SET);
    if (lseek(7, 0, SEEK_CUR) != 200)
        FAIL("fds 6 and 7 no longer share an offset");
    char buf[64] = {0};
    if (pread(3, buf, 4, 1234) != 4 || memcmp(buf, "mnop", 4))
        FAIL("rw.dat at 1234 reads '%.4s'", buf);
    if (write(4, "second\n", 7) != 7 || lseek(4, 0, SEEK_CUR) != 13)
        FAIL("append: offset %ld after write, expected 13", (long)lseek(4, 0, SEEK_CUR));
    memset(buf, 0, sizeof buf);
    n = read(9, buf, sizeof buf - 1);
    if (n != 9 || memcmp(buf, "self-data", 9))
        FAIL("pipe to self reads %zd '%s', expected 'self-data'", n, buf);
    if (write(10, "more", 4) != 4 || read(9, buf, 4) != 4 || memcmp(buf, "more", 4))
        FAIL("pipe to self no longer connected");
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, dir))
        FAIL("cwd '%s', expected '%s'", cwd, dir);
    mode_t m = umask(0);
    if (m != 027)
        FAIL("umask %03o, expected 027", m);

    kill(child, SIGUSR1);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
        FAIL("child verdict %#x", status);
    if (!failed)
        printf("PASS\n");
    return failed;
}
