// Whether the streaming kernels ask for what they read ahead in software: decode attention's K and
// V rows of a float cache (read_ahead.h), and the weight rows of batch-1 and small-batch products
// on float weights. A choice by CPU vendor, which the benchmarks can force either way.
#pragma once

namespace lk {

/**
 * On by default on Intel CPUs, where the hardware prefetcher alone kept too few lines in flight
 * for two cores (on a Xeon with AMX: a bf16 cache read 1.13-1.19x faster with it, bf16 and f16
 * matrix-vector products 83-86% -> 96-101% of the streaming read), and off on AMD's, where the
 * attention reads took 20-30% longer with it (BENCHMARKS.md).
 */
bool readAhead();

/** Forces readAhead on (1) or off (0), or restores the CPU's default (-1): the benchmarks' A/B. */
void setReadAhead(int mode);

}  // namespace lk
