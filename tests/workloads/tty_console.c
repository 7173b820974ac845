/*
 * tty_console DIR [VT] -- the system console and a virtual terminal across a checkpoint (CRIU's CONSOLE and VT
 * kinds). Run in a session of its own, with no controlling terminal; every open is O_NOCTTY.
 *   fd 3: /dev/console O_RDWR|O_NONBLOCK; fd 5: /dev/console again, O_WRONLY|O_APPEND (a second description);
 *   fd 4: VT (e.g. /dev/tty1) O_RDONLY, close-on-exec -- only when VT is given ("-" or absent: the console alone).
 * Each terminal's termios are changed in harmless ways (TOSTOP toggled, an unusual VEOL2) and the console's window
 * size set to 37x111; the test puts the originals back between the dump and the restore, so the restore has
 * to set them again. Writes DIR/ready ("ready PID"), waits in sigsuspend() for SIGUSR1, then checks each fd's
 * device (5:1, 4:N), status and fd flags, termios byte for byte, the window sizes, and that neither is its
 * controlling terminal; puts every setting back as it found it. Verdict in DIR/verdict ("PASS" or "FAIL:" lines).
 */
#define _GNU_SOURCE
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "workload.h"

static int failures;
static char verdict[8192];
static int vl;

#define FAIL(name, ...) do { vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: %s: ", name); \
                             vl += snprintf(verdict + vl, sizeof verdict - vl, __VA_ARGS__); \
                             vl += snprintf(verdict + vl, sizeof verdict - vl, "\n"); failures++; } while (0)
#define CHECK(name, cond, ...) do { if (!(cond)) FAIL(name, __VA_ARGS__); } while (0)
static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#define SETUP(c) do { if (!(c)) { perror(#c); exit(2); } } while (0)

struct tty_state {
    struct termios2 orig, want;
    struct winsize orig_ws, want_ws;
};

/* Changes FD's termios (and, for the console, its window size) and keeps both the old and the new. */
static void change(int fd, struct tty_state *s, unsigned char veol2, int resize)
{
    memset(s, 0, sizeof *s);
    SETUP(ioctl(fd, TCGETS2, &s->orig) == 0);
    SETUP(ioctl(fd, TIOCGWINSZ, &s->orig_ws) == 0);
    struct termios2 t = s->orig;
    t.c_lflag ^= TOSTOP;
    t.c_cc[VEOL2] = veol2;
    SETUP(ioctl(fd, TCSETS2, &t) == 0);
    SETUP(ioctl(fd, TCGETS2, &s->want) == 0);
    s->want_ws = s->orig_ws;
    if (resize) {
        struct winsize ws = { .ws_row = 37, .ws_col = 111, .ws_xpixel = 3, .ws_ypixel = 5 };
        SETUP(ioctl(fd, TIOCSWINSZ, &ws) == 0);
        SETUP(ioctl(fd, TIOCGWINSZ, &s->want_ws) == 0);
    }
}

static void put_back(int fd, const struct tty_state *s, int resize)
{
    if (ioctl(fd, TCSETS2, &s->orig))
        FAIL("put back", "TCSETS2 on fd %d: %s", fd, strerror(errno));
    if (resize && ioctl(fd, TIOCSWINSZ, &s->orig_ws))
        FAIL("put back", "TIOCSWINSZ on fd %d: %s", fd, strerror(errno));
}

static void check_fd(int fd, unsigned maj, unsigned min, int flags, int cloexec)
{
    struct stat st;
    if (fstat(fd, &st) || !S_ISCHR(st.st_mode) || major(st.st_rdev) != maj || minor(st.st_rdev) != min)
        FAIL("device", "fd %d is %u:%u, want %u:%u", fd, major(st.st_rdev), minor(st.st_rdev), maj, min);
    int fl = fcntl(fd, F_GETFL);
    int mask = O_ACCMODE | O_NONBLOCK | O_APPEND;
    CHECK("flags", fl >= 0 && (fl & mask) == flags, "fd %d status flags %#o, want %#o", fd, fl & mask, flags);
    int fdfl = fcntl(fd, F_GETFD);
    CHECK("fd flags", fdfl == (cloexec ? FD_CLOEXEC : 0), "fd %d fd flags %d, want %d", fd, fdfl, cloexec);
}

static void check_state(int fd, const struct tty_state *s, const char *what)
{
    struct termios2 t;
    memset(&t, 0, sizeof t);
    if (ioctl(fd, TCGETS2, &t)) {
        FAIL(what, "TCGETS2: %s", strerror(errno));
        return;
    }
    CHECK(what, t.c_iflag == s->want.c_iflag && t.c_oflag == s->want.c_oflag && t.c_cflag == s->want.c_cflag
              && t.c_lflag == s->want.c_lflag && t.c_line == s->want.c_line,
          "termios flags %o %o %o %o, want %o %o %o %o", t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag,
          s->want.c_iflag, s->want.c_oflag, s->want.c_cflag, s->want.c_lflag);
    CHECK(what, memcmp(t.c_cc, s->want.c_cc, sizeof t.c_cc) == 0, "c_cc differs (VEOL2 %#x, want %#x)",
          t.c_cc[VEOL2], s->want.c_cc[VEOL2]);
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0)
        CHECK(what, memcmp(&ws, &s->want_ws, sizeof ws) == 0, "window %ux%u (%ux%u px), want %ux%u",
              ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel, s->want_ws.ws_row, s->want_ws.ws_col);
    else
        FAIL(what, "TIOCGWINSZ: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    sigset_t wait_mask;
    workload_begin(on_usr1, &wait_mask);
    const char *vt = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;

    workload_fd_at(3, open("/dev/console", O_RDWR | O_NOCTTY | O_NONBLOCK), "open /dev/console");
    workload_fd_at(5, open("/dev/console", O_WRONLY | O_NOCTTY | O_APPEND), "open /dev/console again");
    unsigned vt_minor = 0;
    if (vt) {
        workload_fd_at(4, open(vt, O_RDONLY | O_NOCTTY | O_CLOEXEC), vt);
        SETUP(fcntl(4, F_SETFD, FD_CLOEXEC) == 0);
        struct stat st;
        SETUP(fstat(4, &st) == 0);
        vt_minor = minor(st.st_rdev);
    }
    struct tty_state console, vts;
    change(3, &console, 0x1d, 1);
    if (vt)
        change(4, &vts, 0x1e, 0);

    char line[64];
    snprintf(line, sizeof line, "ready %d\n", getpid());
    write_file(argv[1], "ready", line);
    while (!got_usr1)
        sigsuspend(&wait_mask);

    check_fd(3, 5, 1, O_RDWR | O_NONBLOCK, 0);
    check_fd(5, 5, 1, O_WRONLY | O_APPEND, 0);
    check_state(3, &console, "console");
    check_state(5, &console, "console (second description)");
    if (vt) {
        check_fd(4, 4, vt_minor, O_RDONLY, 1);
        check_state(4, &vts, "vt");
    }
    /* Neither became the controlling terminal (every open was O_NOCTTY). */
    int ctty = open("/dev/tty", O_RDWR | O_NOCTTY);
    CHECK("ctty", ctty < 0 && errno == ENXIO, "/dev/tty opens (a controlling terminal appeared)");

    put_back(3, &console, 1);
    if (vt)
        put_back(4, &vts, 0);
    write_file(argv[1], "verdict", failures ? verdict : "PASS\n");
    return failures ? 1 : 0;
}
