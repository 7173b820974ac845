/* Register-heavy loop with self-checked invariants. Writes 'R' when running, 'p' every 2^22
 * iterations; counts deliveries of signal 40 (a queued real-time signal); on SIGUSR1 stops,
 * writes "c<count>;" and exits 0 if every invariant held (1 otherwise). */
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static volatile sig_atomic_t rt_count;
static void on_usr1(int sig) { (void)sig; stop = 1; }
static void on_rt(int sig) { (void)sig; rt_count++; }

int main(void)
{
    signal(SIGUSR1, on_usr1);
    signal(40, on_rt);
    uint64_t i = 0, sum = 0, x = 0x9e3779b97f4a7c15ull, y = x;
    double f = 0.0;
    if (write(1, "R", 1) != 1)
        return 2;
    while (!stop) {
        i++;
        sum += i;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : "+r"(y));   /* keep y computed separately from x */
        y = y * 6364136223846793005ull + 1442695040888963407ull;
        f += 1.0;
        if (x != y || sum != i * (i + 1) / 2 || f != (double)i) {
            (void)!write(1, "F", 1);
            return 1;
        }
        if ((i & ((1u << 22) - 1)) == 0)
            (void)!write(1, "p", 1);
    }
    char msg[32];
    int n = snprintf(msg, sizeof msg, "c%d;", (int)rt_count);
    (void)!write(1, msg, n);
    return 0;
}
