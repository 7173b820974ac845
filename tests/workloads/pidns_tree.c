/*
 * A tree that is PID 1 of its own pid namespace and has its own UTS namespace, started by the test as
 * `unshare --fork --pid --uts pidns_tree DIR`: the root (pid 1) takes its own session, sets hostname and
 * domainname, forks two children (a, b), and a forks a grandchild (c); b has a second thread, which checks
 * that gettid() is what it was; a third child (z) exits with status 7 at once and stays a zombie. Each task
 * remembers what getpid()/getppid() gave it. Once all run, the root writes "ready 1 A B Z" (the pids as the
 * namespace numbers them; the test finds c as a's child) to DIR/ready.
 *
 * After SIGUSR1 to the root (only inside sigsuspend: never lost), the root checks itself and sends SIGUSR1
 * on to a and b, a to c; each task checks that getpid()/getppid() are what they were, that it is still in
 * a pid namespace whose init is the root (pid 1; the root's parent is outside: getppid() 0) and that
 * hostname and domainname are as set, then exits 0, or 1 after writing DIR/fail-NAME. The root waits for its
 * children (a waits for c; z must be reaped with its pid and status 7) and writes DIR/verdict: PASS, or FAIL
 * and what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"
#include "failures.h"

#define HOSTNAME "crisp-pidns"
#define DOMAINNAME "crisp.example"

static const char *dir;
static volatile sig_atomic_t go;
static sigset_t wait_mask;

static void on_usr1(int s) { (void)s; go = 1; }

/* b's second thread: blocks in read() until b writes, then compares gettid() with what it was. */
static volatile pid_t thread_tid;
static volatile int thread_same = -1;
static int thread_pipe[2];

static void *thread_main(void *arg)
{
    (void)arg;
    thread_tid = gettid();
    char c;
    while (read(thread_pipe[0], &c, 1) < 0 && errno == EINTR) { }
    thread_same = gettid() == thread_tid;
    return NULL;
}

/* What a task checks of itself after the restore. */
static void check_self(const char *name, pid_t pid, pid_t ppid)
{
    if (getpid() != pid)
        fail("%s: getpid() %d, was %d", name, getpid(), pid);
    if (getppid() != ppid)
        fail("%s: getppid() %d, was %d", name, getppid(), ppid);
    struct utsname u;
    if (uname(&u) != 0)
        fail("%s: uname: %s", name, strerror(errno));
    else {
        if (strcmp(u.nodename, HOSTNAME) != 0)
            fail("%s: hostname '%s', not '%s'", name, u.nodename, HOSTNAME);
        if (strcmp(u.domainname, DOMAINNAME) != 0)
            fail("%s: domainname '%s', not '%s'", name, u.domainname, DOMAINNAME);
    }
    /* Still in a pid namespace whose init is a task of the tree: kill(1, 0) reaches it, and pid 1 is
     * the root's own getpid() for the root. */
    if (kill(1, 0) != 0)
        fail("%s: kill(1, 0): %s", name, strerror(errno));
}

static void wait_for_usr1(void)
{
    while (!go)
        sigsuspend(&wait_mask);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    dir = argv[1];
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    if (getpid() != 1) {
        write_file(dir, "verdict", "FAIL not pid 1 of a pid namespace (start me with unshare --fork --pid --uts)\n");
        return 1;
    }
    if (setsid() < 0 || sethostname(HOSTNAME, strlen(HOSTNAME)) != 0 || setdomainname(DOMAINNAME, strlen(DOMAINNAME)) != 0) {
        write_file(dir, "verdict", "FAIL setsid/sethostname/setdomainname\n");
        return 1;
    }
    int ready[2];
    if (pipe(ready) != 0)
        return 2;

    pid_t a = fork();
    if (a == 0) {
        pid_t me = getpid(), parent = getppid();
        pid_t c = fork();
        if (c == 0) {
            pid_t cme = getpid(), cparent = getppid();
            close(ready[0]);
            if (write(ready[1], "c", 1) != 1) _exit(3);
            close(ready[1]);
            wait_for_usr1();
            check_self("c", cme, cparent);
            child_done(dir, "c");
        }
        close(ready[0]);
        if (write(ready[1], "a", 1) != 1) _exit(3);
        close(ready[1]);
        wait_for_usr1();
        check_self("a", me, parent);
        kill(c, SIGUSR1);
        reap("c", c);
        child_done(dir, "a");
    }
    pid_t b = fork();
    if (b == 0) {
        pid_t me = getpid(), parent = getppid();
        pthread_t thread;
        if (pipe(thread_pipe) != 0 || pthread_create(&thread, NULL, thread_main, NULL) != 0)
            _exit(3);
        while (!thread_tid)
            usleep(1000);
        close(ready[0]);
        if (write(ready[1], "b", 1) != 1) _exit(3);
        close(ready[1]);
        wait_for_usr1();
        check_self("b", me, parent);
        pid_t tid = thread_tid;
        if (write(thread_pipe[1], "x", 1) != 1 || pthread_join(thread, NULL) != 0)
            fail("b: could not wake its thread");
        else if (thread_same != 1)
            fail("b's thread: gettid() is not %d any more", tid);
        child_done(dir, "b");
    }
    pid_t z = fork();
    if (z == 0)
        _exit(7);
    siginfo_t zi;
    if (waitid(P_PID, z, &zi, WEXITED | WNOWAIT) != 0)
        return 2;
    close(ready[1]);
    char got[3];
    size_t have = 0;
    while (have < 3) {
        ssize_t n = read(ready[0], got + have, 3 - have);
        if (n <= 0)
            return 2;
        have += (size_t)n;
    }
    close(ready[0]);
    char line[128];
    snprintf(line, sizeof line, "ready 1 %d %d %d\n", a, b, z);
    write_file(dir, "ready", line);

    wait_for_usr1();
    check_self("root", 1, 0);
    kill(a, SIGUSR1);
    kill(b, SIGUSR1);
    reap("a", a);
    reap("b", b);
    int zstatus = 0;
    pid_t got_z = waitpid(z, &zstatus, WNOHANG);
    if (got_z != z || !WIFEXITED(zstatus) || WEXITSTATUS(zstatus) != 7)
        fail("zombie %d: waitpid gave %d status 0x%x, not status 7", z, got_z, zstatus);
    char verdict[sizeof failures + 16];
    snprintf(verdict, sizeof verdict, failures[0] ? "FAIL %s\n" : "PASS\n", failures);
    write_file(dir, "verdict", verdict);
    return failures[0] ? 1 : 0;
}
