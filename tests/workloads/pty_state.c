/*
 * pty_state DIR -- pseudo-terminals across a checkpoint. Run as a session leader (setsid).
 *   pty A: master and slave held here, raw mode with custom c_cc, a TCSETS2 custom speed, window size
 *     33x101 (7x9 px), slave exclusive (TIOCEXCL); it is this session's controlling terminal, and a child
 *     in its own process group (holding the slave too) is its foreground group. Bytes are left queued
 *     both ways: "m2s-queued" written on the master (unread on the slave) and "s2m-queued" the other way.
 *   pty B: only the master held, in packet mode and locked (TIOCSPTLCK).
 * Writes DIR/ready ("ready PID CHILD"), waits in sigsuspend() for SIGUSR1, then checks: same indexes, termios
 * byte for byte (TCGETS2), window size, modes, session/foreground group, /dev/tty, the queued bytes, and
 * fresh bytes both ways. Verdict in DIR/verdict: "PASS" or "FAIL: ..." lines; exit 0 on pass, 1 on fail.
 */
#define _GNU_SOURCE
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int got_usr1;
static char verdict[8192];
static int vl, failed;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#define FAIL(...) do { vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: " __VA_ARGS__); \
                       vl += snprintf(verdict + vl, sizeof verdict - vl, "\n"); failed = 1; } while (0)
#define SETUP(c) do { if (!(c)) { perror(#c); exit(2); } } while (0)

static pid_t tty_sid(int fd)
{
    pid_t sid;
    return ioctl(fd, TIOCGSID, &sid) ? -1 : sid;
}

static int open_master(int *index)
{
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    SETUP(m >= 0);
    int unlock = 0;
    SETUP(ioctl(m, TIOCSPTLCK, &unlock) == 0);
    SETUP(ioctl(m, TIOCGPTN, index) == 0);
    return m;
}

/* Reads exactly strlen(want) bytes (waiting up to ~10 s) and compares. */
static void expect(int fd, const char *want, const char *what)
{
    char buf[256];
    size_t n = strlen(want), got = 0;
    for (int tries = 0; got < n && tries < 1000; tries++) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0)
            got += r;
        else if (r < 0 && errno != EAGAIN && errno != EINTR) {
            FAIL("%s: read: %s", what, strerror(errno));
            return;
        } else
            usleep(10000);
    }
    buf[got] = 0;
    if (got != n || memcmp(buf, want, n))
        FAIL("%s: got \"%s\" (%zu bytes), want \"%s\"", what, buf, got, want);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char path[4096];
    int ia, ib;
    int ma = open_master(&ia), mb = open_master(&ib);
    char sname[64];
    snprintf(sname, sizeof sname, "/dev/pts/%d", ia);
    int sa = open(sname, O_RDWR | O_NOCTTY);
    SETUP(sa >= 0);
    SETUP(ioctl(sa, TIOCSCTTY, 0) == 0);

    struct termios2 t;
    memset(&t, 0, sizeof t);
    SETUP(ioctl(sa, TCGETS2, &t) == 0);
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~OPOST;
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(CSIZE | PARENB | CBAUD);
    t.c_cflag |= CS8 | BOTHER | (BOTHER << IBSHIFT);
    t.c_ispeed = 12345;
    t.c_ospeed = 54321;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    t.c_cc[VINTR] = 0x07;
    t.c_cc[VEOF] = 0x11;
    t.c_cc[VSTOP] = 0x12;
    SETUP(ioctl(sa, TCSETS2, &t) == 0);
    struct termios2 want_t;
    memset(&want_t, 0, sizeof want_t);
    SETUP(ioctl(sa, TCGETS2, &want_t) == 0);
    struct winsize ws = { .ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9 };
    SETUP(ioctl(ma, TIOCSWINSZ, &ws) == 0);
    SETUP(ioctl(sa, TIOCEXCL) == 0);

    int on = 1;
    SETUP(ioctl(mb, TIOCPKT, &on) == 0);
    SETUP(ioctl(mb, TIOCSPTLCK, &on) == 0);

    pid_t child = fork();
    SETUP(child >= 0);
    if (child == 0) {
        setpgid(0, 0);
        close(ma);
        close(mb);
        for (;;)
            pause();
    }
    setpgid(child, child);
    SETUP(tcsetpgrp(sa, child) == 0);

    SETUP(write(ma, "m2s-queued", 10) == 10);
    SETUP(write(sa, "s2m-queued", 10) == 10);

    struct sigaction sa_usr1 = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa_usr1, NULL);
    /* SIGUSR1 opens only inside sigsuspend: a pause() loop loses one that lands between its flag check
     * and the call. */
    sigset_t usr1, outside;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &outside);
    snprintf(path, sizeof path, "%s/ready", argv[1]);
    FILE *f = fopen(path, "w");
    SETUP(f);
    fprintf(f, "ready %d %d\n", getpid(), child);
    fclose(f);
    while (!got_usr1)
        sigsuspend(&outside);

    int n;
    if (ioctl(ma, TIOCGPTN, &n) || n != ia)
        FAIL("pty A index %d, want %d", n, ia);
    if (ioctl(mb, TIOCGPTN, &n) || n != ib)
        FAIL("pty B index %d, want %d", n, ib);
    struct stat st;
    if (fstat(sa, &st) || major(st.st_rdev) != 136 + ia / 256 || minor(st.st_rdev) != (unsigned)ia % 256)
        FAIL("slave A is not /dev/pts/%d", ia);
    struct termios2 got_t;
    memset(&got_t, 0, sizeof got_t);
    if (ioctl(sa, TCGETS2, &got_t) || memcmp(&got_t, &want_t, sizeof got_t))
        FAIL("termios of slave A differ: iflag %o/%o oflag %o/%o cflag %o/%o lflag %o/%o speeds %u,%u/%u,%u intr %d/%d",
             got_t.c_iflag, want_t.c_iflag, got_t.c_oflag, want_t.c_oflag, got_t.c_cflag, want_t.c_cflag,
             got_t.c_lflag, want_t.c_lflag, got_t.c_ispeed, got_t.c_ospeed, want_t.c_ispeed, want_t.c_ospeed,
             got_t.c_cc[VINTR], want_t.c_cc[VINTR]);
    struct winsize got_ws;
    if (ioctl(sa, TIOCGWINSZ, &got_ws) || memcmp(&got_ws, &ws, sizeof ws))
        FAIL("window size %ux%u (%ux%u px)", got_ws.ws_row, got_ws.ws_col, got_ws.ws_xpixel, got_ws.ws_ypixel);
    if (ioctl(sa, TIOCGEXCL, &n) || n != 1)
        FAIL("slave A not exclusive");
    if (ioctl(mb, TIOCGPKT, &n) || n != 1)
        FAIL("master B not in packet mode");
    if (ioctl(mb, TIOCGPTLCK, &n) || n != 1)
        FAIL("pty B not locked");
    if (ioctl(ma, TIOCGPKT, &n) || n != 0)
        FAIL("master A in packet mode");
    if (tty_sid(sa) != getpid())
        FAIL("session of pty A is %d, want %d", tty_sid(sa), getpid());
    if (tcgetpgrp(sa) != child)
        FAIL("foreground group of pty A is %d, want %d", tcgetpgrp(sa), child);
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0)
        FAIL("no /dev/tty: %s", strerror(errno));
    int tty_nr = -1;
    FILE *stat = fopen("/proc/self/stat", "r");
    if (!stat || fscanf(stat, "%*d %*s %*c %*d %*d %*d %d", &tty_nr) != 1 || tty_nr != (int)((136 + ia / 256) << 8 | (ia % 256)))
        FAIL("controlling terminal %x, want pty A", tty_nr);
    if (stat)
        fclose(stat);
    /* Back to the foreground for the reads below (this orphaned group would get EIO in the background). */
    signal(SIGTTOU, SIG_IGN);
    if (tcsetpgrp(sa, getpid()))
        FAIL("tcsetpgrp: %s", strerror(errno));
    if (getpgid(child) != child || getsid(child) != getpid())
        FAIL("child group %d session %d", getpgid(child), getsid(child));

    expect(sa, "m2s-queued", "bytes queued for the slave");
    expect(ma, "s2m-queued", "bytes queued for the master");
    if (write(ma, "ping", 4) != 4)
        FAIL("write master: %s", strerror(errno));
    expect(sa, "ping", "master to slave");
    if (write(sa, "pong!", 5) != 5)
        FAIL("write slave: %s", strerror(errno));
    expect(ma, "pong!", "slave to master");

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    if (!failed)
        vl += snprintf(verdict + vl, sizeof verdict - vl, "PASS\n");
    snprintf(path, sizeof path, "%s/verdict", argv[1]);
    f = fopen(path, "w");
    if (f) {
        fputs(verdict, f);
        fclose(f);
    }
    return failed ? 1 : 0;
}
