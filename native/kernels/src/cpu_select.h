// Which kernel variant this CPU can run, and the override from LAMINA_KERNEL_VARIANT.
#pragma once
#include <string>
#include <vector>

#include "kernel_table.h"

namespace lk {

struct VariantChoice {
  const KernelTable* table;
  std::string reason;
};

/** CPU features relevant to the kernels that this CPU (and OS) supports. */
std::vector<std::string> cpuFeatures();

/** Whether this CPU (and OS) runs AVX-VNNI: vpdpbusd on ymm registers in its VEX form. */
bool cpuHasAvxVnni();

/** Variants this CPU can run, best first. */
std::vector<std::string> supportedVariants();

/**
 * Variants that stand in for a CPU this one is not, for testing and measuring their paths here:
 * amxbf16-emulated (the AMX tiles' instructions run in software, on any AVX-512-BF16 CPU),
 * avx512-novnni and avx2-novnni (those variants' int8 attention as on a CPU without AVX-512 VNNI or
 * AVX-VNNI, on CPUs with it); selectable by name, never chosen.
 */
std::vector<std::string> emulatedVariants();

/** The table for `name` (a supported or an emulated variant), or null if unknown or not supported here. */
const KernelTable* variantTable(const std::string& name);

/** The best supported variant, unless LAMINA_KERNEL_VARIANT names a supported one. */
VariantChoice chooseVariant();

}  // namespace lk
