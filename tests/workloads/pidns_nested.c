/*
 * Pid namespaces nested inside the tree's, started by the test as `unshare --fork --pid pidns_nested DIR`: the
 * root (pid 1) takes its own session and forks n and u (n waits for u's fork before its own: g takes a pid in the
 * tree's namespace too, so n and u are always 2 and 3). n unshares CLONE_NEWPID and forks g, pid 1 of the nested
 * namespace, which forks h (pid 2 there). u unshares CLONE_NEWPID and forks nothing yet. Each task remembers its
 * getpid()/getppid() and its NSpid line (/proc/self/status, without the first, host-level entry). Once all
 * run, the root writes "ready 1 N U" (the tree's pids of n and u) to DIR/ready.
 *
 * SIGUSR2 to the root is a check round (after each restore): every task checks itself as below and writes
 * DIR/checked-NAME-ROUND. After SIGUSR1 to the root (only inside sigsuspend: never lost) it goes on to n and u, n to g, g to h; each
 * task checks getpid()/getppid() and its NSpid as before (its own pid last); u then forks k, which must be pid 1
 * of a new pid namespace one level below u's (getppid() 0). Each exits 0, or 1 after writing DIR/fail-NAME;
 * the root reaps n and u (n reaps g, g reaps h, u reaps k) and writes DIR/verdict: PASS, or FAIL and what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"
#include "failures.h"

static const char *dir;
static volatile sig_atomic_t go;
static sigset_t wait_mask;

static volatile sig_atomic_t check_now;
static int rounds;

static void on_usr1(int s) { (void)s; go = 1; }
static void on_usr2(int s) { (void)s; check_now = 1; }

/* NSpid of this task without its first (host-level) entry, as "1 5 2"; the count of levels in *levels. */
static void own_nspid(char *out, size_t size, int *levels)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    out[0] = 0;
    *levels = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        char *save = NULL, *word = strtok_r(line + 6, " \t\n", &save);
        for (int i = 0; word; i++, word = strtok_r(NULL, " \t\n", &save)) {
            (*levels)++;
            if (i == 0)
                continue;
            size_t n = strlen(out);
            snprintf(out + n, size - n, n ? " %s" : "%s", word);
        }
    }
    fclose(f);
}

struct self {
    const char *name;
    pid_t pid, ppid;
    char nspid[128];
    int levels;
};

static void remember(struct self *s, const char *name)
{
    s->name = name;
    s->pid = getpid();
    s->ppid = getppid();
    own_nspid(s->nspid, sizeof s->nspid, &s->levels);
}

/* What a task checks of itself after the restore: its pids at every level and its parent. */
static void check_self(const struct self *s)
{
    struct self now;
    remember(&now, s->name);
    if (now.pid != s->pid)
        fail("%s: getpid() %d, was %d", s->name, now.pid, s->pid);
    if (now.ppid != s->ppid)
        fail("%s: getppid() %d, was %d", s->name, now.ppid, s->ppid);
    if (strcmp(now.nspid, s->nspid) != 0)
        fail("%s: NSpid (below the host's) '%s', was '%s'", s->name, now.nspid, s->nspid);
    const char *last = strrchr(now.nspid, ' ');
    if (atoi(last ? last + 1 : now.nspid) != now.pid)
        fail("%s: NSpid '%s' does not end with getpid() %d", s->name, now.nspid, now.pid);
}

/* Waits for SIGUSR1. Each SIGUSR2 (sent by the test after a restore) is a check round: the task checks itself,
 * writes DIR/checked-NAME-ROUND ("ok" or what failed so far) and passes SIGUSR2 on to its children. */
static void wait_for_usr1(const struct self *s, pid_t child1, pid_t child2)
{
    while (!go) {
        sigsuspend(&wait_mask);
        if (!check_now)
            continue;
        check_now = 0;
        check_self(s);
        char file[64];
        snprintf(file, sizeof file, "checked-%s-%d", s->name, ++rounds);
        char text[sizeof failures + 2];
        snprintf(text, sizeof text, "%s\n", failures[0] ? failures : "ok");
        write_file(dir, file, text);
        if (child1 > 0)
            kill(child1, SIGUSR2);
        if (child2 > 0)
            kill(child2, SIGUSR2);
    }
}

static void report_ready(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        _exit(3);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    dir = argv[1];
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, NULL);
    sigdelset(&wait_mask, SIGUSR2);
    signal(SIGUSR2, on_usr2);
    if (getpid() != 1) {
        write_file(dir, "verdict", "FAIL not pid 1 of a pid namespace (start me with unshare --fork --pid)\n");
        return 1;
    }
    if (setsid() < 0)
        return 2;
    struct self root;
    remember(&root, "root");
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        return 2;

    pid_t n = fork();
    if (n == 0) {
        struct self me;
        remember(&me, "n");
        close(ready[0]);
        close(go[1]);
        // g takes a pid in the tree's namespace too: only once u has its own, so that n and u are 2 and 3.
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        close(go[0]);
        if (unshare(CLONE_NEWPID) != 0)
            _exit(3);
        pid_t g = fork();
        if (g == 0) {
            struct self gs;
            remember(&gs, "g");
            if (gs.pid != 1 || gs.levels != me.levels + 1)
                _exit(4);
            pid_t h = fork();
            if (h == 0) {
                struct self hs;
                remember(&hs, "h");
                report_ready(ready[1], 'h');
                wait_for_usr1(&hs, 0, 0);
                check_self(&hs);
                if (hs.ppid != 1)
                    fail("h: parent %d, not the nested namespace's init", hs.ppid);
                child_done(dir, "h");
            }
            report_ready(ready[1], 'g');
            wait_for_usr1(&gs, h, 0);
            check_self(&gs);
            if (gs.ppid != 0)
                fail("g: getppid() %d, not 0 (its parent is outside its namespace)", gs.ppid);
            kill(h, SIGUSR1);
            reap("h", h);
            child_done(dir, "g");
        }
        report_ready(ready[1], 'n');
        wait_for_usr1(&me, g, 0);
        check_self(&me);
        kill(g, SIGUSR1);
        reap("g", g);
        child_done(dir, "n");
    }
    close(go[0]);
    pid_t u = fork();
    if (u == 0) {
        struct self me;
        remember(&me, "u");
        close(ready[0]);
        close(go[1]);
        if (unshare(CLONE_NEWPID) != 0)
            _exit(3);
        report_ready(ready[1], 'u');
        wait_for_usr1(&me, 0, 0);
        check_self(&me);
        int up[2];
        if (pipe(up) != 0)
            _exit(3);
        pid_t k = fork();
        if (k == 0) {
            struct self ks;
            remember(&ks, "k");
            char verdict[256] = "";
            if (ks.pid != 1 || ks.ppid != 0 || ks.levels != me.levels + 1)
                snprintf(verdict, sizeof verdict, "k: getpid() %d getppid() %d at %d levels, not pid 1, 0 at %d",
                         ks.pid, ks.ppid, ks.levels, me.levels + 1);
            if (write(up[1], verdict, strlen(verdict) + 1) < 0)
                _exit(3);
            _exit(0);
        }
        char from_k[256] = "";
        close(up[1]);
        if (read(up[0], from_k, sizeof from_k - 1) <= 0)
            fail("u: no word from its child k");
        else if (from_k[0])
            fail("%s", from_k);
        reap("k", k);
        child_done(dir, "u");
    }
    if (write(go[1], "g", 1) != 1)
        return 2;
    close(go[1]);
    close(ready[1]);
    char got[4];
    size_t have = 0;
    while (have < 4) {
        ssize_t r = read(ready[0], got + have, 4 - have);
        if (r <= 0)
            return 2;
        have += (size_t)r;
    }
    close(ready[0]);
    char line[128];
    snprintf(line, sizeof line, "ready 1 %d %d\n", n, u);
    write_file(dir, "ready", line);

    wait_for_usr1(&root, n, u);
    check_self(&root);
    kill(n, SIGUSR1);
    kill(u, SIGUSR1);
    reap("n", n);
    reap("u", u);
    char verdict[sizeof failures + 16];
    snprintf(verdict, sizeof verdict, failures[0] ? "FAIL %s\n" : "PASS\n", failures);
    write_file(dir, "verdict", verdict);
    return failures[0] ? 1 : 0;
}
