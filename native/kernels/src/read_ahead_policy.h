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

/**
 * Whether decode attention through vdpbf16ps (grouped queries on a bf16 cache, the AVX-512-BF16
 * build) asks for its KV rows ahead: on every vendor by default. Each row there feeds four query
 * heads' dot products, and on the AVX-512 EPYC (family 26) the hardware prefetcher alone left the
 * reads and that arithmetic taking nearly the sum of their times: asking ahead read 1.04-1.40x
 * faster in 8 of 8 rows (batch 8, 8 KV heads, 4k and 16k, four runs), where the widening f16 and
 * f32 kernels and the weights' products were level or slower with it (BENCHMARKS.md). Forced with
 * readAhead by setReadAhead.
 */
bool readAheadBf16Dot();

/**
 * Forces readAhead (and readAheadBf16Dot) on (1) or off (0), or restores the CPU's default (-1):
 * the benchmarks' A/B.
 */
void setReadAhead(int mode);

}  // namespace lk
