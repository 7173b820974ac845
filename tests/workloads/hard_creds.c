/*
 * hard_creds FILE  -- credentials beyond "root" and "uid 1000", checked from the inside.
 *
 * As root: securebits KEEP_CAPS|NO_SETUID_FIXUP... (see WANT_SECBITS), groups {5, 27, 1001},
 * setresgid(1001, 1002, 1003), drop CAP_SYS_MODULE and CAP_SYS_BOOT from the bounding set,
 * setresuid(1004, 1005, 1006) (capabilities kept by SECBIT_KEEP_CAPS), then capset: permitted and
 * inheritable {CHOWN, NET_BIND_SERVICE, KILL}, effective {NET_BIND_SERVICE}, and
 * ambient raise NET_BIND_SERVICE. Appends "0\n", "1\n", ... to FILE every 100 ms. SIGUSR1:
 * re-read every value with get* calls, capget, PR_GET_SECUREBITS, PR_CAPBSET_READ and
 * PR_CAP_AMBIENT_IS_SET; print PASS or FAIL lines on stderr; exit 0 / 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WANT_SECBITS (SECBIT_KEEP_CAPS | SECBIT_NOROOT)
#define CAPS ((1u << CAP_CHOWN) | (1u << CAP_NET_BIND_SERVICE) | (1u << CAP_KILL))
#define EFF (1u << CAP_NET_BIND_SERVICE)

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static int failures;
#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); failures++; } while (0)

static void die(const char *what)
{
    fprintf(stderr, "hard_creds: %s: %s\n", what, strerror(errno));
    _exit(126);
}

static void verify(void)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    if (r != 1004 || e != 1005 || s != 1006)
        FAIL("uids %u %u %u", r, e, s);
    if (gr != 1001 || ge != 1002 || gs != 1003)
        FAIL("gids %u %u %u", gr, ge, gs);
    gid_t groups[16];
    int n = getgroups(16, groups);
    if (n != 3 || groups[0] != 5 || groups[1] != 27 || groups[2] != 1001)
        FAIL("groups: %d of them", n);
    int sb = prctl(PR_GET_SECUREBITS);
    if (sb != WANT_SECBITS)
        FAIL("securebits 0x%x, expected 0x%x", sb, WANT_SECBITS);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &hdr, d) != 0)
        FAIL("capget: %s", strerror(errno));
    else if (d[0].permitted != CAPS || d[0].inheritable != CAPS || d[0].effective != EFF || d[1].permitted || d[1].inheritable || d[1].effective)
        FAIL("caps prm %x inh %x eff %x", d[0].permitted, d[0].inheritable, d[0].effective);
    if (prctl(PR_CAPBSET_READ, CAP_SYS_MODULE) != 0 || prctl(PR_CAPBSET_READ, CAP_SYS_BOOT) != 0 || prctl(PR_CAPBSET_READ, CAP_CHOWN) != 1)
        FAIL("bounding set");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) != 1 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0) != 0)
        FAIL("ambient set");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hard_creds FILE\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open");
    if (prctl(PR_SET_SECUREBITS, WANT_SECBITS) != 0)
        die("PR_SET_SECUREBITS");
    gid_t groups[] = {5, 27, 1001};
    if (setgroups(3, groups) != 0)
        die("setgroups");
    if (setresgid(1001, 1002, 1003) != 0)
        die("setresgid");
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE) != 0 || prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) != 0)
        die("PR_CAPBSET_DROP");
    if (setresuid(1004, 1005, 1006) != 0)
        die("setresuid");
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{.effective = EFF, .permitted = CAPS, .inheritable = CAPS}};
    if (syscall(SYS_capset, &hdr, d) != 0)
        die("capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0)
        die("PR_CAP_AMBIENT_RAISE");
    verify();
    if (failures)
        return 1;
    for (long i = 0; !got_usr1; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", i);
        if (write(fd, buf, len) != len)
            return 1;
        struct timespec ts = {0, 100 * 1000000L};
        while (!got_usr1 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    verify();
    if (failures)
        return 1;
    fprintf(stderr, "PASS\n");
    return 0;
}
