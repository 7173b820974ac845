/*
 * ghost_map -- deleted files that only mappings keep, and a deleted cwd.
 *
 * argv[1] a fresh directory. Prints "ready PID CHILDPID\n", waits for SIGUSR1 (sigsuspend), checks,
 * prints PASS or FAIL lines on stderr; exit 0 on pass.
 *
 * State (every fd closed, every name unlinked): DIR/priv mapped MAP_PRIVATE over 3 pages, page 1
 * written after mapping (a private copy), the file's own data changed after (visible in pages 0 and 2
 * only); DIR/shared mapped MAP_SHARED by the parent and its child (inherited), written by both;
 * /dev/shm/crisp-ghost-PID (tmpfs) mapped MAP_PRIVATE read-only; the cwd of both tasks is DIR/gone,
 * removed. After restore: the contents as before, maps naming "PATH (deleted)", the shared mapping
 * still one between the tasks, and the cwd a directory with no links named "DIR/gone (deleted)".
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
static int failures;
static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
#define DIE(what) do { perror(what); exit(2); } while (0)

static char *map_new(const char *path, int pages, char fill, int flags, int prot)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        DIE(path);
    char buf[PAGE];
    for (int i = 0; i < pages; i++) {
        memset(buf, fill + i, PAGE);
        if (write(fd, buf, PAGE) != PAGE)
            DIE("write");
    }
    char *p = mmap(NULL, pages * PAGE, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        DIE("mmap");
    close(fd);
    return p;
}

/* /proc/self/maps names ADDR's mapping "PATH (deleted)". */
static void expect_mapped_deleted(void *addr, const char *path)
{
    char line[512], want[300];
    snprintf(want, sizeof want, "%s (deleted)", path);
    FILE *f = fopen("/proc/self/maps", "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long start = strtoul(line, NULL, 16);
        if (start == (unsigned long)addr) {
            found = 1;
            CHECK(path, strstr(line, want) != NULL, "maps line is %s", line);
        }
    }
    if (f)
        fclose(f);
    CHECK(path, found, "no mapping at %p", addr);
}

static void expect_cwd(const char *gone, const char *who)
{
    char link[512] = {0}, want[512];
    snprintf(want, sizeof want, "%s (deleted)", gone);
    CHECK(who, readlink("/proc/self/cwd", link, sizeof link - 1) > 0 && strcmp(link, want) == 0, "cwd is '%s'", link);
    struct stat st;
    CHECK(who, stat(".", &st) == 0 && S_ISDIR(st.st_mode) && st.st_nlink == 0 && (st.st_mode & 0777) == 0710,
          "cwd is not a removed directory of mode 0710 (nlink %lu, mode %o)", (unsigned long)st.st_nlink, st.st_mode);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t mask;
    workload_begin(on_usr1, &mask);
    char priv[300], shared[300], shm[300], gone[300];
    snprintf(priv, sizeof priv, "%s/priv", argv[1]);
    snprintf(shared, sizeof shared, "%s/shared", argv[1]);
    snprintf(shm, sizeof shm, "/dev/shm/crisp-ghost-%d", getpid());
    snprintf(gone, sizeof gone, "%s/gone", argv[1]);

    char *p = map_new(priv, 3, 'a', MAP_PRIVATE, PROT_READ | PROT_WRITE);
    memset(p + PAGE, 'P', PAGE);                      /* a private copy of page 1 */
    int fd = open(priv, O_WRONLY);
    if (fd < 0 || pwrite(fd, "FILE", 4, 0) != 4 || pwrite(fd, "FILE", 4, 2 * PAGE) != 4 || pwrite(fd, "FILE", 4, PAGE) != 4)
        DIE("pwrite priv");
    close(fd);
    char *s = map_new(shared, 2, 'k', MAP_SHARED, PROT_READ | PROT_WRITE);
    memcpy(s, "parent", 6);
    char *r = map_new(shm, 1, 'x', MAP_PRIVATE, PROT_READ);
    if (unlink(priv) || unlink(shared) || unlink(shm))
        DIE("unlink");
    if (mkdir(gone, 0710) || chmod(gone, 0710) || chdir(gone) || rmdir(gone))
        DIE("gone");

    pid_t child = fork();
    if (child == 0) {
        memcpy(s + PAGE, "child", 5);
        while (!go)
            sigsuspend(&mask);
        expect_cwd(gone, "child's cwd");
        CHECK("child's shared view", memcmp(s, "parent-after", 12) == 0, "reads '%.12s'", s);
        memcpy(s + PAGE, "child-after", 11);
        return failures ? 1 : 0;
    }
    while (memcmp(s + PAGE, "child", 5))
        usleep(1000);
    printf("ready %d %d\n", getpid(), child);
    while (!go)
        sigsuspend(&mask);

    CHECK("private page 0", memcmp(p, "FILE", 4) == 0 && p[4] == 'a', "reads '%.5s' (the file's data)", p);
    CHECK("private page 1", p[0 + PAGE] == 'P' && p[PAGE + PAGE - 1] == 'P', "not the private copy");
    CHECK("private page 2", memcmp(p + 2 * PAGE, "FILE", 4) == 0 && p[2 * PAGE + 4] == 'c', "reads '%.5s'", p + 2 * PAGE);
    expect_mapped_deleted(p, priv);
    CHECK("shared", memcmp(s, "parent", 6) == 0 && memcmp(s + PAGE, "child", 5) == 0 && s[PAGE + 5] == 'l',
          "reads '%.6s' / '%.6s'", s, s + PAGE);
    expect_mapped_deleted(s, shared);
    CHECK("tmpfs", r[0] == 'x' && r[PAGE - 1] == 'x', "reads '%c'", r[0]);
    expect_mapped_deleted(r, shm);
    expect_cwd(gone, "cwd");

    memcpy(s, "parent-after", 12);
    kill(child, SIGUSR1);
    int status;
    CHECK("child", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    CHECK("shared after", memcmp(s + PAGE, "child-after", 11) == 0, "the child's write is not seen: '%.11s'", s + PAGE);
    fprintf(stderr, failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
