/*
 * thr_churn DIR -- threads being created and exiting all the time (for a race-free seize).
 * Four spawner threads each create short-lived detached threads in a loop; every one of those bumps a
 * counter and exits. The leader writes DIR/ready ("ready PID") once, then DIR/count (threads done) every
 * 20 ms. A dump must succeed whenever it comes, and the restored process must go on churning.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static volatile long done;

static void *shortlived(void *arg)
{
    (void)arg;
    __sync_fetch_and_add(&done, 1);
    return NULL;
}

static void *spawner(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, &attr, shortlived, NULL) != 0)
            usleep(100);
    }
    return NULL;
}

static void write_file(const char *dir, const char *name, long value, int pid)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    if (pid)
        fprintf(f, "ready %d\n", pid);
    else
        fprintf(f, "%ld\n", value);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, spawner, NULL) != 0)
            return 2;
    }
    while (done < 100)
        usleep(1000);
    write_file(argv[1], "ready", 0, getpid());
    for (;;) {
        write_file(argv[1], "count", done, 0);
        usleep(20000);
    }
}
