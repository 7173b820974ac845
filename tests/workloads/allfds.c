/*
 * allfds -- one process tree holding every fd kind crisp restores: the root starts each part
 * (a workload that sets up and later checks its kinds from the inside) as its child, so one dump
 * of the root takes all of them at once.
 *
 * Usage: allfds DIR -- NAME EXE ARGS... [-- NAME EXE ARGS...]...
 *   - part NAME runs EXE ARGS in a session of its own, with stdout/stderr in DIR/NAME.out / DIR/NAME.err (its own files, if
 *     it needs a directory, go under DIR/NAME);
 *   - once every part printed its "ready" line, prints "ready PID" on stdout;
 *   - on SIGUSR1 sends SIGUSR1 to every part, reaps it and prints "part NAME: exit N" each, then
 *     "PASS" when all exited 0, else "FAIL". Exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXPARTS 16

static struct part {
    const char *name;
    char **argv;
    pid_t pid;
} parts[MAXPARTS];
static int nparts;
static const char *dir;

static void die(const char *what)
{
    printf("FAIL setup: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(2);
}

static char *file_of(const struct part *p, const char *ext)
{
    static char buf[4][4096];
    static int n;
    char *s = buf[n++ % 4];
    snprintf(s, 4096, "%s/%s.%s", dir, p->name, ext);
    return s;
}

/* A part says "ready" first on its stdout, or in DIR/NAME/ready (memfd_state writes it there). */
static int starts_ready(const char *file)
{
    char buf[6] = {0};
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, 5);
    close(fd);
    return n == 5 && !strcmp(buf, "ready");
}

static int is_ready(const struct part *p)
{
    char alt[4096];
    snprintf(alt, sizeof alt, "%s/%s/ready", dir, p->name);
    return starts_ready(file_of(p, "out")) || starts_ready(alt);
}

static void start(struct part *p, const sigset_t *mask)
{
    p->pid = fork();
    if (p->pid < 0)
        die("fork");
    if (p->pid > 0)
        return;
    setsid();   // each part its own session, as from its own shell: pty_state makes its pty its terminal
    int in = open("/dev/null", O_RDONLY);
    int out = open(file_of(p, "out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(file_of(p, "err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(2);
    close(in), close(out), close(err);
    sigprocmask(SIG_SETMASK, mask, NULL);   // the part sees the mask a shell would give it
    execv(p->argv[0], p->argv);
    _exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[2], "--"))
        return fprintf(stderr, "usage: allfds DIR -- NAME EXE ARGS... [-- NAME EXE ARGS...]\n"), 2;
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--"))
            continue;
        argv[i] = NULL;   // ends the previous part's argv
        if (i + 2 >= argc || nparts == MAXPARTS)
            return fprintf(stderr, "allfds: bad part list\n"), 2;
        parts[nparts].name = argv[i + 1];
        parts[nparts].argv = &argv[i + 2];
        nparts++;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    for (int i = 0; i < nparts; i++)
        start(&parts[i], &old);

    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0;; waited++) {
        int ready = 0;
        for (int i = 0; i < nparts; i++) {
            int status;
            if (waitpid(parts[i].pid, &status, WNOHANG) == parts[i].pid) {
                printf("FAIL setup: part %s exited (status 0x%x) before it was ready\n", parts[i].name, status);
                return 2;
            }
            ready += is_ready(&parts[i]);
        }
        if (ready == nparts)
            break;
        if (waited > 3000) {
            printf("FAIL setup: parts not ready after 30 s\n");
            return 2;
        }
        nanosleep(&tick, NULL);
    }
    printf("ready %d\n", getpid());

    while (sigwaitinfo(&usr1, NULL) != SIGUSR1)
        ;
    int failed = 0;
    for (int i = 0; i < nparts; i++) {
        int status = -1;
        kill(parts[i].pid, SIGUSR1);
        if (waitpid(parts[i].pid, &status, 0) != parts[i].pid)
            status = -1;
        int ok = status == 0;
        failed |= !ok;
        printf("part %s: %s 0x%x\n", parts[i].name, ok ? "exit" : "FAILED, status", status);
    }
    printf(failed ? "FAIL\n" : "PASS\n");
    return failed;
}
