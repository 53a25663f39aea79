/* Instruction-level peaks of one core: fp32 FMA (vfmadd231ps zmm) against the AVX512-BF16 dot
 * product (vdpbf16ps zmm: 32 multiply-adds of bf16 pairs into 16 fp32 lanes), each over 30
 * independent accumulators so that throughput, not latency, is measured. Prints one JSON line.
 * Built and run by bench/bf16_compare.sh (gcc -O2 -mavx512f; the instruction runs where the CPU
 * has it even when CPUID hides the flag, as on this project's machines). */
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define R(I, r) I " %%zmm0,%%zmm1,%%zmm" #r "\n\t"
#define BODY(I)                                                                                              \
  R(I, 2) R(I, 3) R(I, 4) R(I, 5) R(I, 6) R(I, 7) R(I, 8) R(I, 9) R(I, 10) R(I, 11) R(I, 12) R(I, 13) R(I, 14) \
      R(I, 15) R(I, 16) R(I, 17) R(I, 18) R(I, 19) R(I, 20) R(I, 21) R(I, 22) R(I, 23) R(I, 24) R(I, 25)      \
          R(I, 26) R(I, 27) R(I, 28) R(I, 29) R(I, 30) R(I, 31)
#define CLOBBER                                                                                             \
  "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", \
      "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",       \
      "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"

int main(void) {
  const long n = 20000000;
  double best_fma = 0, best_dp = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double t = now();
    for (long i = 0; i < n; ++i) __asm__ volatile(BODY("vfmadd231ps")::: CLOBBER);
    double s = now() - t;
    if (n * 30 * 32.0 / s > best_fma) best_fma = n * 30 * 32.0 / s;
    t = now();
    for (long i = 0; i < n; ++i) __asm__ volatile(BODY("vdpbf16ps")::: CLOBBER);
    s = now() - t;
    if (n * 30 * 64.0 / s > best_dp) best_dp = n * 30 * 64.0 / s;
  }
  printf("{\"fma_fp32_gflops\": %.1f, \"dpbf16_gflops\": %.1f}\n", best_fma / 1e9, best_dp / 1e9);
  return 0;
}
