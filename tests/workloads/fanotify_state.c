/*
 * fanotify_state -- one fanotify group with inode marks (a file, a directory watching its children,
 * ignored masks on a child file and, FAN_MARK_IGNORE style, a child directory) and optionally a mount
 * mark, checked from the inside after restore.
 *
 * Usage: fanotify_state DIR MNT|- [fsmark]
 *   - DIR: a scratch directory; MNT: a mount point of its own (a tmpfs) for the mount mark, or "-";
 *     "fsmark" adds a filesystem mark on MNT's filesystem (crisp refuses those);
 *   - sets up, writes "ready PID\n" on stdout, waits in sigsuspend() for SIGUSR1 (blocked otherwise);
 *   - then checks: the group's fdinfo shows the same flags and marks as before the checkpoint, its fd
 *     flags, and that events really arrive: each with the right mask and an fd open on the right file
 *     (with the group's event flags), and none from the ignored child. Prints "PASS" on stderr or
 *     "FAIL: NAME: ..." lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static const char *dir, *mnt;
static int fan;
static char marks_before[8192];
static volatile int got_usr1;


static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void die(const char *what)
{
    fprintf(stderr, "setup: %s: %s\n", what, strerror(errno));
    exit(2);
}

static char *path(const char *base, const char *name)
{
    static char buf[8][4096];
    static int n;
    char *p = buf[n++ % 8];
    snprintf(p, 4096, "%s/%s", base, name);
    return p;
}

static void touch(const char *p)
{
    int f = open(p, O_CREAT | O_WRONLY, 0644);
    if (f < 0)
        die(p);
    close(f);
}

/* The group's "fanotify ..." fdinfo lines, sorted so that the order marks are listed in does not matter. */
static int cmp_lines(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void fan_lines(char *out, size_t size)
{
    char p[64], text[8192];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fan);
    FILE *f = fopen(p, "r");
    if (!f)
        die("fdinfo");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *lines[64];
    int count = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l && count < 64; l = strtok_r(NULL, "\n", &save))
        if (!strncmp(l, "fanotify ", 9))
            lines[count++] = l;
    qsort(lines, count, sizeof lines[0], cmp_lines);
    out[0] = 0;
    for (int i = 0; i < count; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s\n", lines[i]);
}

/* One event read off the group (-1 when none is queued): its mask, and whether its fd is @want. */
static int next_event(unsigned long long *mask, const char *want, int *same, int *cloexec)
{
    static char pending[4096] __attribute__((aligned(8)));
    static ssize_t len, off;
    if (off >= len) {
        len = read(fan, pending, sizeof pending);
        off = 0;
        if (len <= 0) {
            len = 0;
            return -1;
        }
    }
    struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)(pending + off);
    off += m->event_len;
    *mask = m->mask;
    *same = 0;
    *cloexec = 0;
    if (m->fd >= 0) {
        struct stat a, b;
        *same = want && fstat(m->fd, &a) == 0 && stat(want, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
        *cloexec = (fcntl(m->fd, F_GETFD) & FD_CLOEXEC) != 0;
        CHECK("event_pid", m->pid == getpid(), "event from pid %d (want %d)", m->pid, getpid());
        close(m->fd);
    }
    return 0;
}

/* Expects exactly one event (possibly merged) for @want with mask @mask, then an empty queue. */
static void expect(const char *name, const char *want, unsigned long long mask)
{
    unsigned long long got = 0, m;
    int same, cloexec, n = 0;
    while (next_event(&m, want, &same, &cloexec) == 0) {
        n++;
        CHECK(name, same, "event %llx on another file (want %s)", m, want);
        CHECK("event_flags", cloexec, "event fd of %s has no FD_CLOEXEC (event-flags lost)", want);
        got |= m;
    }
    CHECK(name, n > 0 && got == mask, "%d event(s), mask %llx (want %llx on %s)", n, got, mask, want);
}

static void setup(int fsmark)
{
    if (mkdir(path(dir, "d"), 0755) < 0)
        die("mkdir d");
    touch(path(dir, "watched"));
    touch(path(dir, "d/loud"));
    touch(path(dir, "d/quiet"));
    if (mkdir(path(dir, "d/sub"), 0755) < 0)
        die("mkdir d/sub");
    fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_CLOEXEC);
    if (fan < 0)
        die("fanotify_init");
    if (fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, path(dir, "watched")) < 0)
        die("mark watched");
    if (fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN | FAN_ONDIR | FAN_EVENT_ON_CHILD, AT_FDCWD, path(dir, "d")) < 0)
        die("mark d");
    /* The child's ignored mask silences the parent's FAN_OPEN for it; it survives modification. */
    if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN, AT_FDCWD,
                      path(dir, "d/quiet")) < 0)
        die("mark quiet");
    /* The newer API (mflags FAN_MARK_IGNORE): a subdirectory's own ignore mask, FAN_ONDIR included. */
    if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV, FAN_OPEN | FAN_ONDIR, AT_FDCWD, path(dir, "d/sub")) < 0)
        die("mark sub");
    if (mnt && fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, mnt) < 0)
        die("mount mark");
    /* On MNT's own filesystem: one on DIR's would queue every other process's events. */
    if (fsmark && (!mnt || fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, mnt) < 0))
        die("filesystem mark (needs MNT)");
    fan_lines(marks_before, sizeof marks_before);
}

static void check(void)
{
    char now[8192];
    fan_lines(now, sizeof now);
    CHECK("fdinfo", !strcmp(now, marks_before), "marks now:\n%swere:\n%s", now, marks_before);
    int fl = fcntl(fan, F_GETFL), fdf = fcntl(fan, F_GETFD);
    CHECK("nonblock", fl >= 0 && (fl & O_NONBLOCK), "O_NONBLOCK lost (flags %o)", fl);
    CHECK("cloexec", fdf >= 0 && (fdf & FD_CLOEXEC), "FD_CLOEXEC lost");

    unsigned long long m;
    int same, cloexec;
    CHECK("empty", next_event(&m, NULL, &same, &cloexec) < 0, "event %llx queued before any change", m);

    int f = open(path(dir, "watched"), O_WRONLY | O_APPEND);
    if (f < 0 || write(f, "x", 1) != 1)
        die("write watched");
    close(f);
    expect("watched", path(dir, "watched"), FAN_MODIFY | FAN_CLOSE_WRITE);

    /* quiet and sub first: nothing may come from them, so the only event is loud's. */
    close(open(path(dir, "d/quiet"), O_RDONLY));
    close(open(path(dir, "d/sub"), O_RDONLY | O_DIRECTORY));
    close(open(path(dir, "d/loud"), O_RDONLY));
    expect("child_open", path(dir, "d/loud"), FAN_OPEN);
    close(open(path(dir, "d"), O_RDONLY | O_DIRECTORY));
    /* A group reporting fds never reports FAN_ONDIR itself (fanotify(7)). */
    expect("dir_open", path(dir, "d"), FAN_OPEN);

    if (mnt) {
        char *p = path(mnt, "m");
        f = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (f < 0 || write(f, "y", 1) != 1)
            die("write under the mount");
        close(f);
        expect("mount", p, FAN_CLOSE_WRITE);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fanotify_state DIR MNT|- [fsmark]\n");
        return 2;
    }
    dir = argv[1];
    mnt = strcmp(argv[2], "-") ? argv[2] : NULL;
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    /* SIGUSR1 opens only inside sigsuspend: a pause() loop loses one that lands between its flag check
     * and the pause. */
    sigset_t usr1, outside;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &outside);
    setup(argc > 3 && !strcmp(argv[3], "fsmark"));
    printf("ready %d\n", getpid());
    fflush(stdout);
    while (!got_usr1)
        sigsuspend(&outside);
    check();
    if (failures == 0)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
