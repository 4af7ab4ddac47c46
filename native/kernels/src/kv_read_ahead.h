// Whether decode attention on a float cache asks for its K and V rows ahead in software
// (read_ahead.h): a choice by CPU vendor, which the benchmarks can force either way.
#pragma once

namespace lk {

/**
 * On by default on Intel CPUs, where the hardware prefetcher alone kept too few of the scattered
 * blocks' lines in flight (a Xeon with AMX read a bf16 cache 1.13-1.19x faster with it), and off on
 * AMD's, where the same reads took 20-30% longer with it (BENCHMARKS.md).
 */
bool kvReadAhead();

/** Forces kvReadAhead on (1) or off (0), or restores the CPU's default (-1): the benchmarks' A/B. */
void setKvReadAhead(int mode);

}  // namespace lk
