/*
 * mqueue_fd DIR -- holds a POSIX message queue open (mq_open) with one message queued; writes
 * "ready PID" to DIR/ready, then sleeps until killed. crisp refuses such an fd by name.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <unistd.h>
#include "workload.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char name[64], ready[32];
    snprintf(name, sizeof name, "/crisp-mq-%d", getpid());
    mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0600, NULL);
    if (q == (mqd_t)-1) {
        perror("mq_open");
        return 2;
    }
    mq_unlink(name);   /* nothing left behind once the workload is gone */
    if (mq_send(q, "hello", 5, 1) < 0)
        return 2;
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(argv[1], "ready", ready);
    for (;;)
        pause();
}
