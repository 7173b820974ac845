/*
 * ttyjob DIR -- a foreground job on a terminal (started by ptyjob). Turns echo off on its terminal,
 * writes DIR/ready ("ready PID"), then answers lines read on stdin: "check" prints "ok pid=P echo=off"
 * when fds 0-2 are a terminal, its group is the terminal's foreground and it is no session leader
 * ("bad: ..." otherwise); "quit" exits 0. EOF or a read error exits 3. The answers go through fd 3, /dev/tty
 * opened at start (the controlling terminal by name), which must be the terminal of fd 0 after a restore too.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct termios t;
    if (tcgetattr(0, &t))
        return 2;
    t.c_lflag &= ~ECHO;
    if (tcsetattr(0, TCSANOW, &t))
        return 2;
    int tty = open("/dev/tty", O_RDWR);
    if (tty < 0 || (tty != 3 && (dup2(tty, 3) != 3 || close(tty))))
        return 2;
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/ready", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f)
        return 2;
    fprintf(f, "ready %d\n", getpid());
    fclose(f);
    for (;;) {
        ssize_t n = read(0, line, sizeof line - 1);
        if (n <= 0)
            return 3;
        line[n] = 0;
        if (strncmp(line, "quit", 4) == 0)
            return 0;
        if (strncmp(line, "check", 5) != 0)
            continue;
        char bad[256] = "";
        if (!isatty(0) || !isatty(1) || !isatty(2))
            strcat(bad, " not-a-tty");
        if (tcgetpgrp(0) != getpgrp())
            strcat(bad, " background");
        if (getsid(0) == getpid())
            strcat(bad, " session-leader");
        if (tcgetattr(0, &t) || (t.c_lflag & ECHO))
            strcat(bad, " echo-on");
        struct stat st;
        if (fstat(3, &st) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 0 || tcgetpgrp(3) != getpgrp())
            strcat(bad, " no-dev-tty");
        if (bad[0])
            dprintf(1, "bad:%s\n", bad);
        else
            dprintf(3, "ok pid=%d echo=off\n", getpid());
    }
}
