/*
 * sysv_ipc DIR MODE -- System V IPC across a checkpoint. MODE "ns": run in an IPC namespace of its own
 * (the test starts it with unshare --ipc); "host": in the host's, with keys made from the pid.
 *
 * Segment A (key KA, 3 pages + 100 bytes, owner 1000:1000, mode 0640, SHM_LOCKed, its middle page
 * mprotect'ed read-only) and segment B (IPC_PRIVATE, 2 pages, IPC_RMID'ed while attached) hold patterns and
 * are attached in the parent and, by fork, in its child. "ns" adds: segment C (key KC, never attached),
 * a semaphore set (key KS: 1, 7, 42), a message queue (key KQ, created as euid 1000) holding messages
 * of types 1, 5, 2, 5, 3 (the last 1000 bytes).
 * Writes /proc/sysvipc/{shm,sem,msg} to DIR/sysvipc-before, then "ready PID CHILD IDA IDB" to DIR/ready.
 * On SIGUSR1: DIR/sysvipc-after, then checks ids, keys, modes, owners, sizes, attachments, contents,
 * semaphore values, messages (by type, in order), then writes 'P' through A, has the child see it and
 * answer 'C' through A, and writes DIR/verdict.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define SIZE_A (3 * PAGE + 100)
#define SIZE_B (2 * PAGE)
#define SIZE_C (PAGE)

static int failures;
static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

static int ns_mode;
static key_t ka, kc, ks, kq;
static int ida, idb, idc, ids, idq;
static unsigned char *a, *b;

static unsigned char pattern(int seg, size_t i) { return (unsigned char)(seg * 31 + i * 7 + i / 4096); }

static void copy_file(const char *from, FILE *to)
{
    FILE *f = fopen(from, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, to);
    if (f)
        fclose(f);
}

static void dump_sysvipc(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *out = fopen(path, "w");
    if (!out)
        return;
    copy_file("/proc/sysvipc/shm", out);
    copy_file("/proc/sysvipc/sem", out);
    copy_file("/proc/sysvipc/msg", out);
    fclose(out);
}

struct msg { long type; char text[1000]; };

static void send(long type, const char *text, size_t len)
{
    struct msg m = { .type = type };
    memcpy(m.text, text, len);
    if (msgsnd(idq, &m, len, IPC_NOWAIT) < 0) {
        perror("msgsnd");
        exit(2);
    }
}

static void setup(void)
{
    ka = 0x43520000 | (getpid() & 0xffff);
    kc = ka + 0x10000;
    ks = ka + 0x20000;
    kq = ka + 0x30000;
    ida = shmget(ka, SIZE_A, 0600 | IPC_CREAT | IPC_EXCL);
    idb = shmget(IPC_PRIVATE, SIZE_B, 0600 | IPC_CREAT);
    if (ida < 0 || idb < 0) {
        perror("shmget");
        exit(2);
    }
    struct shmid_ds ds;
    shmctl(ida, IPC_STAT, &ds);
    ds.shm_perm.uid = 1000;
    ds.shm_perm.gid = 1000;
    ds.shm_perm.mode = 0640;
    if (shmctl(ida, IPC_SET, &ds) < 0 || shmctl(ida, SHM_LOCK, NULL) < 0) {
        perror("shmctl A");
        exit(2);
    }
    a = shmat(ida, NULL, 0);
    b = shmat(idb, NULL, 0);
    if (a == (void *)-1 || b == (void *)-1) {
        perror("shmat");
        exit(2);
    }
    for (size_t i = 0; i < SIZE_A; i++)
        a[i] = pattern(1, i);
    for (size_t i = 0; i < SIZE_B; i++)
        b[i] = pattern(2, i);
    if (mprotect(a + PAGE, PAGE, PROT_READ) < 0 || shmctl(idb, IPC_RMID, NULL) < 0) {
        perror("mprotect/IPC_RMID");
        exit(2);
    }
    if (!ns_mode)
        return;
    idc = shmget(kc, SIZE_C, 0644 | IPC_CREAT | IPC_EXCL);
    unsigned char *c = shmat(idc, NULL, 0);
    if (idc < 0 || c == (void *)-1) {
        perror("segment C");
        exit(2);
    }
    for (size_t i = 0; i < SIZE_C; i++)
        c[i] = pattern(3, i);
    shmdt(c);
    ids = semget(ks, 3, 0660 | IPC_CREAT | IPC_EXCL);
    unsigned short values[3] = { 1, 7, 42 };
    if (ids < 0 || semctl(ids, 0, SETALL, values) < 0) {
        perror("semaphores");
        exit(2);
    }
    if (setegid(1000) < 0 || seteuid(1000) < 0)
        exit(2);
    idq = msgget(kq, 0620 | IPC_CREAT | IPC_EXCL);
    if (seteuid(0) < 0 || setegid(0) < 0 || idq < 0) {
        perror("msgget");
        exit(2);
    }
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)pattern(4, i);
    send(1, "one", 3);
    send(5, "five", 4);
    send(2, "two", 3);
    send(5, "five-b", 6);
    send(3, big, sizeof big);
}

static void check_segment(const char *name, int id, key_t key, size_t size, unsigned mode, uid_t uid, unsigned nattch)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0) {
        FAIL(name, "IPC_STAT of id %d: %s", id, strerror(errno));
        return;
    }
    CHECK(name, ds.shm_perm.__key == key, "key 0x%x, expected 0x%x", ds.shm_perm.__key, key);
    CHECK(name, ds.shm_segsz == size, "size %zu", ds.shm_segsz);
    CHECK(name, ds.shm_perm.mode == mode, "mode 0%o, expected 0%o", ds.shm_perm.mode, mode);
    CHECK(name, ds.shm_perm.uid == uid && ds.shm_perm.cuid == 0, "uid %u cuid %u", ds.shm_perm.uid, ds.shm_perm.cuid);
    CHECK(name, ds.shm_nattch == nattch, "nattch %lu, expected %u", ds.shm_nattch, nattch);
}

static void check_message(long type, const char *text, size_t len)
{
    struct msg m;
    ssize_t n = msgrcv(idq, &m, sizeof m.text, type, IPC_NOWAIT);
    CHECK("message", n == (ssize_t)len && memcmp(m.text, text, len) == 0, "type %ld: got %zd bytes of type %ld", type, n, n >= 0 ? m.type : 0);
}

static void check_all(void)
{
    /* nattch counts VMAs: the mprotect split A into three in each task */
    check_segment("segment A", ida, ka, SIZE_A, 0640 | SHM_LOCKED, 1000, 6);
    check_segment("segment B", idb, IPC_PRIVATE, SIZE_B, 0600 | SHM_DEST, 0, 2);
    int bad = 0;
    for (size_t i = 0; i < SIZE_A; i++)
        bad += a[i] != pattern(1, i);
    for (size_t i = 0; i < SIZE_B; i++)
        bad += b[i] != pattern(2, i);
    CHECK("contents", bad == 0, "%d bytes differ", bad);
    if (!ns_mode)
        return;
    check_segment("segment C", idc, kc, SIZE_C, 0644, 0, 0);
    unsigned char *c = shmat(idc, NULL, SHM_RDONLY);
    CHECK("segment C attach", c != (void *)-1, "%s", strerror(errno));
    if (c != (void *)-1) {
        for (size_t i = 0; i < SIZE_C; i++)
            bad += c[i] != pattern(3, i);
        CHECK("segment C contents", bad == 0, "%d bytes differ", bad);
        shmdt(c);
    }
    unsigned short values[3] = { 0 };
    CHECK("semaphores", semget(ks, 0, 0) == ids, "key 0x%x gives %d, not %d", ks, semget(ks, 0, 0), ids);
    CHECK("semaphores", semctl(ids, 0, GETALL, values) == 0 && values[0] == 1 && values[1] == 7 && values[2] == 42,
          "values %u %u %u", values[0], values[1], values[2]);
    struct semid_ds sds;
    CHECK("semaphores", semctl(ids, 0, IPC_STAT, &sds) == 0 && (sds.sem_perm.mode & 0777) == 0660 && sds.sem_nsems == 3,
          "mode 0%o nsems %lu", sds.sem_perm.mode, sds.sem_nsems);
    struct msqid_ds q;
    CHECK("queue", msgget(kq, 0) == idq, "key 0x%x gives %d, not %d", kq, msgget(kq, 0), idq);
    CHECK("queue", msgctl(idq, IPC_STAT, &q) == 0 && q.msg_qnum == 5 && (q.msg_perm.mode & 0777) == 0620 && q.msg_perm.cuid == 1000
          && q.msg_perm.uid == 1000, "qnum %lu mode 0%o uid %u cuid %u", q.msg_qnum, q.msg_perm.mode, q.msg_perm.uid, q.msg_perm.cuid);
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)pattern(4, i);
    check_message(5, "five", 4);
    check_message(5, "five-b", 6);
    check_message(0, "one", 3);
    check_message(0, "two", 3);
    check_message(0, big, sizeof big);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[1];
    ns_mode = strcmp(argv[2], "ns") == 0;
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    setup();
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        while (!got_usr1)
            sigsuspend(&wait_mask);
        if (a[0x100] != 'P')
            _exit(3);
        a[0x200] = 'C';
        _exit(0);
    }
    dump_sysvipc(dir, "sysvipc-before");
    char ready[128];
    snprintf(ready, sizeof ready, "ready %d %d %d %d\n", getpid(), child, ida, idb);
    write_file(dir, "ready", ready);
    while (!got_usr1)
        sigsuspend(&wait_mask);

    dump_sysvipc(dir, "sysvipc-after");
    check_all();
    a[0x100] = 'P';
    kill(child, SIGUSR1);
    int status = 0;
    CHECK("child", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "status 0x%x (3: it did not see the parent's write)", status);
    CHECK("shared", a[0x200] == 'C', "the child's write is not seen (0x%x)", a[0x200]);
    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
