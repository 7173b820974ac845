/*
 * mqueue_fd DIR [nofd] -- holds a POSIX message queue open (mq_open) with one message queued, its name unlinked;
 * writes "ready PID" to DIR/ready, then sleeps until killed. crisp refuses an fd on a queue unlinked while open by
 * name. With "nofd" (run in an IPC namespace of its own) the queue stays in the namespace with no fd open on it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
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
    int nofd = argc > 2 && strcmp(argv[2], "nofd") == 0;
    if (!nofd)
        mq_unlink(name);   /* nothing left behind once the workload is gone */
    if (mq_send(q, "hello", 5, 1) < 0)
        return 2;
    if (nofd)
        mq_close(q);   /* the queue lives on in the namespace, which goes with the workload */
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(argv[1], "ready", ready);
    for (;;)
        pause();
}
