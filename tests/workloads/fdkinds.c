/*
 * fdkinds -- one process holding every non-socket fd kind crisp restores, each
 * checked from the inside after restore.
 *
 * Usage: fdkinds DIR KIND...   (KIND: eventfd signalfd timerfd epoll inotify
 *        ghost fifo opath dir locks, or "all"; "userfaultfd" adds an fd crisp refuses)
 *   - sets the kinds up with files under DIR, prints "ready PID\n" on stdout;
 *   - waits for SIGUSR1 (blocked, sigwaitinfo), then checks every kind: a failed
 *     check prints "FAIL: NAME: ..." on stderr; all passing prints "PASS".
 *     Exit 0 on pass, 1 on fail, 2 on setup error.
 * Locks are checked from a forked child (a second process must see them held).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKLOAD_COUNTED_CHECKS
#include "workload.h"

static int failures;
static const char *dir;


static void die(const char *what)
{
    fprintf(stderr, "setup: %s: %s\n", what, strerror(errno));
    exit(2);
}

static char *path(const char *name)
{
    static char buf[8][4096];
    static int n;
    char *p = buf[n++ % 8];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* ---- eventfd ---- */
static int efd_sem, efd_big;
static void setup_eventfd(void)
{
    if ((efd_sem = eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK)) < 0)
        die("eventfd");
    if ((efd_big = eventfd(0, 0)) < 0)
        die("eventfd");
    uint64_t v = 0x123456789ULL;
    if (write(efd_big, &v, 8) != 8)
        die("eventfd write");
}
static void check_eventfd(void)
{
    uint64_t v = 0;
    CHECK("eventfd_sem", read(efd_sem, &v, 8) == 8 && v == 1, "semaphore read gave %llu (want 1)", (unsigned long long)v);
    CHECK("eventfd_sem_nonblock", fcntl(efd_sem, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
    int left = 0;
    while (read(efd_sem, &v, 8) == 8)
        left++;
    CHECK("eventfd_sem_count", left == 6, "%d more reads (want 6)", left);
    CHECK("eventfd_counter", read(efd_big, &v, 8) == 8 && v == 0x123456789ULL, "counter %llx", (unsigned long long)v);
}

/* ---- signalfd ---- */
static int sfd;
static void setup_signalfd(void)
{
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigaddset(&m, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &m, NULL) < 0 || (sfd = signalfd(-1, &m, SFD_NONBLOCK)) < 0)
        die("signalfd");
}
static void check_signalfd(void)
{
    struct signalfd_siginfo si;
    CHECK("signalfd_empty", read(sfd, &si, sizeof si) < 0 && errno == EAGAIN, "a signal was already queued");
    kill(getpid(), SIGWINCH);
    memset(&si, 0, sizeof si);
    ssize_t n = read(sfd, &si, sizeof si);
    CHECK("signalfd_read", n == sizeof si && si.ssi_signo == SIGWINCH, "read %zd signo %u", n, si.ssi_signo);
    kill(getpid(), SIGUSR2);
    n = read(sfd, &si, sizeof si);
    CHECK("signalfd_mask", n == sizeof si && si.ssi_signo == SIGUSR2, "read %zd signo %u", n, si.ssi_signo);
}

/* ---- timerfd ---- */
static int tfd_mono, tfd_fired, tfd_abs;
static void setup_timerfd(void)
{
    struct itimerspec a = {{1000, 5}, {500, 0}};
    if ((tfd_mono = timerfd_create(CLOCK_MONOTONIC, 0)) < 0 || timerfd_settime(tfd_mono, 0, &a, NULL) < 0)
        die("timerfd mono");
    struct itimerspec b = {{0, 0}, {0, 1000}};
    if ((tfd_fired = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK)) < 0 || timerfd_settime(tfd_fired, 0, &b, NULL) < 0)
        die("timerfd boottime");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec c = {{0, 0}, {now.tv_sec + 600, 0}};
    if ((tfd_abs = timerfd_create(CLOCK_REALTIME, 0)) < 0 || timerfd_settime(tfd_abs, TFD_TIMER_ABSTIME, &c, NULL) < 0)
        die("timerfd abs");
    usleep(20000);   /* tfd_fired expires: one tick left unread */
}
static void check_timerfd(void)
{
    struct itimerspec cur;
    timerfd_gettime(tfd_mono, &cur);
    CHECK("timerfd_interval", cur.it_interval.tv_sec == 1000 && cur.it_interval.tv_nsec == 5,
          "interval %ld.%09ld", (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
    CHECK("timerfd_remaining", cur.it_value.tv_sec > 300 && cur.it_value.tv_sec < 500, "remaining %lds", (long)cur.it_value.tv_sec);
    uint64_t ticks = 0;
    CHECK("timerfd_ticks", read(tfd_fired, &ticks, 8) == 8 && ticks == 1, "ticks %llu", (unsigned long long)ticks);
    timerfd_gettime(tfd_abs, &cur);
    CHECK("timerfd_abstime", cur.it_value.tv_sec > 300 && cur.it_value.tv_sec <= 600, "remaining %lds", (long)cur.it_value.tv_sec);
}

/* ---- epoll ---- */
static int ep, ep_os, e_ready, e_idle, e_os, pip[2];
#define D_READY 0xAAAA000000000001ULL
#define D_PIPE 0xBBBB000000000002ULL
#define D_IDLE 0xCCCC000000000003ULL
#define D_OS 0xDDDD000000000004ULL
static void setup_epoll(void)
{
    if ((ep = epoll_create1(0)) < 0 || (ep_os = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create");
    e_ready = eventfd(3, 0);
    e_idle = eventfd(0, 0);
    e_os = eventfd(1, 0);
    if (pipe(pip) < 0 || write(pip[1], "epoll", 5) != 5)
        die("pipe");
    struct epoll_event ev = {EPOLLIN, {.u64 = D_READY}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, e_ready, &ev) < 0)
        die("epoll_ctl ready");
    ev = (struct epoll_event){EPOLLIN | EPOLLET, {.u64 = D_PIPE}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, pip[0], &ev) < 0)
        die("epoll_ctl pipe");
    ev = (struct epoll_event){EPOLLIN, {.u64 = D_IDLE}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, e_idle, &ev) < 0)
        die("epoll_ctl idle");
    ev = (struct epoll_event){EPOLLIN | EPOLLONESHOT, {.u64 = D_OS}};
    if (epoll_ctl(ep_os, EPOLL_CTL_ADD, e_os, &ev) < 0)
        die("epoll_ctl oneshot");
    /* The one-shot item fires now and stays disarmed across the checkpoint. */
    if (epoll_wait(ep_os, &ev, 1, 1000) != 1 || ev.data.u64 != D_OS)
        die("epoll_wait oneshot");
}
static int wait_set(int fd, uint64_t *got, int max)
{
    struct epoll_event evs[8];
    int n = epoll_wait(fd, evs, 8, 0);
    for (int i = 0; i < n && i < max; i++)
        got[i] = evs[i].data.u64;
    return n;
}
static int has(uint64_t *got, int n, uint64_t d)
{
    for (int i = 0; i < n; i++)
        if (got[i] == d)
            return 1;
    return 0;
}
static void check_epoll(void)
{
    uint64_t got[8];
    int n = wait_set(ep, got, 8);
    CHECK("epoll_ready", n == 2 && has(got, n, D_READY) && has(got, n, D_PIPE), "first wait: %d events", n);
    n = wait_set(ep, got, 8);
    CHECK("epoll_et", n == 1 && got[0] == D_READY, "second wait: %d events (edge-triggered pipe must not repeat)", n);
    struct epoll_event ev = {EPOLLOUT, {.u64 = D_IDLE + 0x10}};
    CHECK("epoll_mod", epoll_ctl(ep, EPOLL_CTL_MOD, e_idle, &ev) == 0, "MOD: %s", strerror(errno));
    CHECK("epoll_del", epoll_ctl(ep, EPOLL_CTL_DEL, e_ready, NULL) == 0, "DEL: %s", strerror(errno));
    n = wait_set(ep, got, 8);
    CHECK("epoll_after_ctl", n == 1 && got[0] == D_IDLE + 0x10, "after MOD/DEL: %d events", n);
    n = wait_set(ep_os, got, 8);
    CHECK("epoll_oneshot_disarmed", n == 0, "disarmed one-shot item fired (%d)", n);
    ev = (struct epoll_event){EPOLLIN | EPOLLONESHOT, {.u64 = D_OS}};
    CHECK("epoll_oneshot_rearm", epoll_ctl(ep_os, EPOLL_CTL_MOD, e_os, &ev) == 0, "MOD: %s", strerror(errno));
    n = wait_set(ep_os, got, 8);
    CHECK("epoll_oneshot_fires", n == 1 && got[0] == D_OS, "re-armed: %d events", n);
    CHECK("epoll_cloexec", fcntl(ep_os, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
}

/* ---- inotify ---- */
static int ino, wd_a, wd_c;
static void setup_inotify(void)
{
    mkdir(path("wa"), 0755);
    mkdir(path("wb"), 0755);
    mkdir(path("wc"), 0755);
    if ((ino = inotify_init1(IN_NONBLOCK)) < 0)
        die("inotify_init1");
    wd_a = inotify_add_watch(ino, path("wa"), IN_CREATE);
    int wd_b = inotify_add_watch(ino, path("wb"), IN_CREATE);
    wd_c = inotify_add_watch(ino, path("wc"), IN_CREATE | IN_DELETE | IN_ONLYDIR);
    if (wd_a < 0 || wd_b < 0 || wd_c < 0)
        die("inotify_add_watch");
    inotify_rm_watch(ino, wd_b);   /* a gap in the watch ids */
    char buf[4096];
    while (read(ino, buf, sizeof buf) > 0) /* drop the IN_IGNORED of wb */
        ;
}
static int next_event(int *wd, char *name)
{
    static char buf[4096];
    ssize_t n = read(ino, buf, sizeof buf);
    if (n < (ssize_t)sizeof(struct inotify_event))
        return -1;
    struct inotify_event *e = (struct inotify_event *)buf;
    *wd = e->wd;
    strcpy(name, e->len ? e->name : "");
    return (int)e->mask;
}
static void check_inotify(void)
{
    int wd;
    char name[256];
    CHECK("inotify_empty", next_event(&wd, name) < 0, "an event was queued before any change (wd %d)", wd);
    close(open(path("wc/x"), O_CREAT | O_WRONLY, 0644));
    int mask = next_event(&wd, name);
    CHECK("inotify_wd_c", mask == IN_CREATE && wd == wd_c && !strcmp(name, "x"), "event %x wd %d (want %d) '%s'", mask, wd, wd_c, name);
    close(open(path("wa/y"), O_CREAT | O_WRONLY, 0644));
    mask = next_event(&wd, name);
    CHECK("inotify_wd_a", mask == IN_CREATE && wd == wd_a && !strcmp(name, "y"), "event %x wd %d (want %d) '%s'", mask, wd, wd_a, name);
    CHECK("inotify_same_wd", inotify_add_watch(ino, path("wa"), IN_CREATE) == wd_a, "re-adding wa gave a new wd");
    close(open(path("wb/z"), O_CREAT | O_WRONLY, 0644));
    CHECK("inotify_removed", next_event(&wd, name) < 0, "removed watch wb fired (wd %d)", wd);
}

/* ---- ghost (deleted but open) ---- */
static int ghost;
static char ghost_data[100000];
static void setup_ghost(void)
{
    for (size_t i = 0; i < sizeof ghost_data; i++)
        ghost_data[i] = (char)(i * 7 + 3);
    if ((ghost = open(path("ghost"), O_RDWR | O_CREAT | O_TRUNC, 0640)) < 0)
        die("ghost open");
    if (write(ghost, ghost_data, sizeof ghost_data) != sizeof ghost_data)
        die("ghost write");
    lseek(ghost, 4242, SEEK_SET);
    unlink(path("ghost"));
}
static void check_ghost(void)
{
    struct stat st;
    fstat(ghost, &st);
    CHECK("ghost_unlinked", st.st_nlink == 0, "nlink %lu", (unsigned long)st.st_nlink);
    CHECK("ghost_size", st.st_size == sizeof ghost_data, "size %ld", (long)st.st_size);
    CHECK("ghost_mode", (st.st_mode & 07777) == 0640, "mode %o", st.st_mode & 07777);
    CHECK("ghost_pos", lseek(ghost, 0, SEEK_CUR) == 4242, "pos %ld", (long)lseek(ghost, 0, SEEK_CUR));
    static char back[sizeof ghost_data];
    CHECK("ghost_data", pread(ghost, back, sizeof back, 0) == sizeof back && !memcmp(back, ghost_data, sizeof back), "contents differ");
    CHECK("ghost_gone", access(path("ghost"), F_OK) < 0, "the path exists again");
}

/* ---- fifo ---- */
static int fifo_r, fifo_w;
static void setup_fifo(void)
{
    if (mkfifo(path("fifo"), 0600) < 0 || (fifo_r = open(path("fifo"), O_RDONLY | O_NONBLOCK)) < 0 ||
        (fifo_w = open(path("fifo"), O_WRONLY)) < 0)
        die("fifo");
    if (write(fifo_w, "fifo-data", 9) != 9)
        die("fifo write");
}
static void check_fifo(void)
{
    char buf[64] = {0};
    ssize_t n = read(fifo_r, buf, sizeof buf);
    CHECK("fifo_data", n == 9 && !memcmp(buf, "fifo-data", 9), "read %zd '%s'", n, buf);
    n = write(fifo_w, "more", 4);
    CHECK("fifo_same", n == 4 && read(fifo_r, buf, sizeof buf) == 4 && !memcmp(buf, "more", 4), "ends are not one fifo");
    struct stat st;
    CHECK("fifo_type", fstat(fifo_r, &st) == 0 && S_ISFIFO(st.st_mode), "not a fifo");
    CHECK("fifo_flags", (fcntl(fifo_r, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == (O_RDONLY | O_NONBLOCK) &&
                            (fcntl(fifo_w, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_WRONLY, "flags changed");
}

/* ---- O_PATH ---- */
static int opath_dir, opath_file;
static void setup_opath(void)
{
    mkdir(path("po"), 0755);
    close(open(path("po/file"), O_CREAT | O_WRONLY, 0644));
    if ((opath_dir = open(path("po"), O_PATH | O_DIRECTORY)) < 0 || (opath_file = open(path("po/file"), O_PATH)) < 0)
        die("O_PATH");
}
static void check_opath(void)
{
    CHECK("opath_flag", (fcntl(opath_dir, F_GETFL) & O_PATH) && (fcntl(opath_file, F_GETFL) & O_PATH), "O_PATH lost");
    int f = openat(opath_dir, "file", O_RDONLY);
    CHECK("opath_openat", f >= 0, "openat through O_PATH dir: %s", strerror(errno));
    close(f);
    char buf[4];
    CHECK("opath_noread", read(opath_file, buf, 4) < 0 && errno == EBADF, "O_PATH fd became readable");
    struct stat a, b;
    CHECK("opath_stat", fstat(opath_file, &a) == 0 && stat(path("po/file"), &b) == 0 && a.st_ino == b.st_ino, "other inode");
}

/* ---- directory ---- */
static int dfd;
static void setup_dir(void)
{
    mkdir(path("dd"), 0755);
    close(open(path("dd/plain"), O_CREAT | O_WRONLY, 0644));
    if ((dfd = open(path("dd"), O_RDONLY | O_DIRECTORY)) < 0)
        die("dir");
}
static void check_dir(void)
{
    int f = openat(dfd, "plain", O_RDONLY);
    CHECK("dir_openat", f >= 0, "openat: %s", strerror(errno));
    close(f);
    char buf[4096];
    CHECK("dir_getdents", syscall(SYS_getdents64, dfd, buf, sizeof buf) > 0, "getdents: %s", strerror(errno));
}

/* ---- locks ---- */
static int lk_flock, lk_posix, lk_ofd;
static void setup_locks(void)
{
    lk_flock = open(path("lock-flock"), O_RDWR | O_CREAT, 0644);
    lk_posix = open(path("lock-posix"), O_RDWR | O_CREAT, 0644);
    lk_ofd = open(path("lock-ofd"), O_RDWR | O_CREAT, 0644);
    if (lk_flock < 0 || lk_posix < 0 || lk_ofd < 0)
        die("lock files");
    if (flock(lk_flock, LOCK_EX | LOCK_NB) < 0)
        die("flock");
    struct flock p = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
    if (fcntl(lk_posix, F_SETLK, &p) < 0)
        die("F_SETLK");
    struct flock o = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(lk_ofd, F_OFD_SETLK, &o) < 0)
        die("F_OFD_SETLK");
}
static void check_locks(void)
{
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        int bad = 0;
        int f = open(path("lock-flock"), O_RDWR);
        if (flock(f, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
            fprintf(stderr, "FAIL: lock_flock: a second process could take it\n");
            bad++;
        }
        int p = open(path("lock-posix"), O_RDWR);
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
        if (fcntl(p, F_GETLK, &q) < 0 || q.l_type != F_WRLCK || q.l_start != 10 || q.l_len != 10 || q.l_pid != parent) {
            fprintf(stderr, "FAIL: lock_posix: type %d start %ld len %ld pid %d (want %d)\n", q.l_type, (long)q.l_start,
                    (long)q.l_len, q.l_pid, parent);
            bad++;
        }
        int o = open(path("lock-ofd"), O_RDWR);
        struct flock r = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(o, F_OFD_GETLK, &r) < 0 || r.l_type != F_RDLCK) {
            fprintf(stderr, "FAIL: lock_ofd: type %d\n", r.l_type);
            bad++;
        }
        _exit(bad);
    }
    int st = 0;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        failures++;
}

static const struct kind {
    const char *name;
    void (*setup)(void);
    void (*check)(void);
} kinds[] = {
    {"eventfd", setup_eventfd, check_eventfd}, {"signalfd", setup_signalfd, check_signalfd},
    {"timerfd", setup_timerfd, check_timerfd}, {"epoll", setup_epoll, check_epoll},
    {"inotify", setup_inotify, check_inotify}, {"ghost", setup_ghost, check_ghost},
    {"fifo", setup_fifo, check_fifo},          {"opath", setup_opath, check_opath},
    {"dir", setup_dir, check_dir},             {"locks", setup_locks, check_locks},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fdkinds DIR KIND...\n");
        return 2;
    }
    dir = argv[1];
    int on[NKINDS] = {0};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "userfaultfd")) {
            if (syscall(SYS_userfaultfd, O_CLOEXEC) < 0)
                die("userfaultfd");
            continue;
        }
        int found = 0;
        for (size_t k = 0; k < NKINDS; k++)
            if (!strcmp(argv[i], "all") || !strcmp(argv[i], kinds[k].name))
                on[k] = found = 1;
        if (!found) {
            fprintf(stderr, "unknown kind %s\n", argv[i]);
            return 2;
        }
    }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    for (size_t k = 0; k < NKINDS; k++)
        if (on[k])
            kinds[k].setup();
    printf("ready %d\n", getpid());
    fflush(stdout);
    while (sigwaitinfo(&usr1, NULL) != SIGUSR1)
        ;
    for (size_t k = 0; k < NKINDS; k++)
        if (on[k])
            kinds[k].check();
    if (failures == 0)
        fprintf(stderr, "PASS\n");
    return failures ? 1 : 0;
}
