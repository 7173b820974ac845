// gpu_counter FILE -- a small CUDA program for the real-GPU check of crisp's CUDA plugin.
// Fills 64 MiB of device memory with a pattern, then every 100 ms runs a kernel that increments a
// counter kept in device memory, copies it back and appends it to FILE ("0\n", "1\n", ...). The count
// lives only on the GPU, so after a checkpoint/restore it must go on without a gap. On SIGUSR1 it
// checks the pattern on the device and the counter, prints PASS or FAIL: ... on stderr, exits 0 / 1.
#include <cuda_runtime.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORDS (16u << 20)   // 64 MiB of uint32

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

__global__ void fill(unsigned *buf) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < WORDS; i += gridDim.x * blockDim.x)
        buf[i] = i * 2654435761u;
}

__global__ void verify(const unsigned *buf, unsigned *bad) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < WORDS; i += gridDim.x * blockDim.x)
        if (buf[i] != i * 2654435761u)
            atomicAdd(bad, 1u);
}

__global__ void step(unsigned long long *counter) { (*counter)++; }

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
    fprintf(stderr, "FAIL: %s: %s\n", #call, cudaGetErrorString(e)); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    unsigned *buf, *bad; unsigned long long *counter;
    CHECK(cudaMalloc(&buf, WORDS * sizeof(unsigned)));
    CHECK(cudaMalloc(&bad, sizeof(unsigned)));
    CHECK(cudaMalloc(&counter, sizeof(unsigned long long)));
    CHECK(cudaMemset(counter, 0, sizeof(unsigned long long)));
    fill<<<256, 256>>>(buf);
    CHECK(cudaDeviceSynchronize());
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0) return 2;
    unsigned long long host = 0, written = 0;
    while (!got_usr1) {
        CHECK(cudaMemcpy(&host, counter, sizeof host, cudaMemcpyDeviceToHost));
        if (host != written) { fprintf(stderr, "FAIL: device counter %llu, expected %llu\n", host, written); return 1; }
        char line[32]; int len = snprintf(line, sizeof line, "%llu\n", host);
        if (write(fd, line, len) != len) return 4;
        written++;
        step<<<1, 1>>>(counter);
        CHECK(cudaDeviceSynchronize());
        struct timespec ts = {0, 100 * 1000000L}; nanosleep(&ts, NULL);
    }
    unsigned nbad = 0;
    CHECK(cudaMemset(bad, 0, sizeof nbad));
    verify<<<256, 256>>>(buf, bad);
    CHECK(cudaMemcpy(&nbad, bad, sizeof nbad, cudaMemcpyDeviceToHost));
    if (nbad) { fprintf(stderr, "FAIL: %u words of the device pattern changed\n", nbad); return 1; }
    fprintf(stderr, "PASS\n");
    return 0;
}
