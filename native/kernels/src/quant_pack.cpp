// Packing 32-value block formats with 16 rows in the lanes (layout: quant_pack.h). A byte
// permutation done once per weight at load, so plain scalar code.
#include "quant_pack.h"

#include <cstring>

namespace lk {

bool packableType(int qtype) {
  return qtype == kQ8_0 || qtype == kQ4_0 || qtype == kQ4_1 || qtype == kQ5_0 || qtype == kQ5_1 || qtype == kIQ4_NL;
}

void packRowGroups(uint8_t* dst, const uint8_t* w, int qtype, int64_t cols, int64_t g0, int64_t g1) {
  const int64_t bb = kQuantFormats[qtype].bytes, nb = cols / 32, rowBytes = nb * bb;
  const PackedBlock at = packedBlock(qtype);
  // Row by row, each row's blocks in order: the reads are one sequential stream, the writes stay
  // within the group's packed bytes (a few KiB to tens of KiB, in cache). 7-14 GB/s on two
  // threads into touched memory; into a fresh allocation the page faults take most of the time
  // (bench/kernels/quant-pack.ts).
  for (int64_t g = g0; g < g1; g++) {
    const uint8_t* rows = w + g * kPackRows * rowBytes;
    uint8_t* group = dst + g * nb * kPackRows * bb;
    for (int64_t r = 0; r < kPackRows; r++) {
      for (int64_t b = 0; b < nb; b++) {
        const uint8_t* blk = rows + r * rowBytes + b * bb;
        uint8_t* out = group + b * kPackRows * bb;
        std::memcpy(out + 2 * r, blk, 2);
        if (at.mins >= 0) std::memcpy(out + at.mins + 2 * r, blk + 2, 2);
        if (qtype == kQ8_0) {
          for (int64_t j = 0; j < 8; j++) {
            uint32_t quad;
            std::memcpy(&quad, blk + 2 + 4 * j, 4);
            quad ^= 0x80808080u;  // q + 128 in each byte
            std::memcpy(out + at.values + 64 * j + 4 * r, &quad, 4);
          }
          continue;
        }
        for (int64_t j = 0; j < 4; j++) std::memcpy(out + at.values + 64 * j + 4 * r, blk + nibblesAt(qtype) + 4 * j, 4);
        if (at.masks >= 0) {
          uint32_t qh;
          std::memcpy(&qh, blk + fifthBitsAt(qtype), 4);
          for (int u = 0; u < 8; u++) {
            uint64_t mask = 0;
            if (r > 0) std::memcpy(&mask, out + at.masks + 8 * u, 8);
            mask |= uint64_t((qh >> (16 * (u / 4) + 4 * (u % 4))) & 15) << (4 * r);
            std::memcpy(out + at.masks + 8 * u, &mask, 8);
          }
        }
      }
    }
  }
}

}  // namespace lk
