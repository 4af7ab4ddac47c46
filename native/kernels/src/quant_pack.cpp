// Packing 32-value block formats with 16 rows in the lanes (layout: quant_pack.h). A byte
// permutation done once per weight at load, so plain scalar code.
#include "quant_pack.h"

#include <cstring>

#include "quant_kernels.h"

namespace lk {

bool packableType(int qtype) {
  return qtype == kQ8_0 || qtype == kQ4_0 || qtype == kQ4_1 || qtype == kQ5_0 || qtype == kQ5_1 || qtype == kIQ4_NL;
}

void packRowGroups(uint8_t* dst, const uint8_t* w, int qtype, int64_t cols, int64_t g0, int64_t g1) {
  const int64_t bb = kQuantFormats[qtype].bytes, nb = cols / 32, rowBytes = nb * bb;
  const PackedBlock at = packedBlock(qtype);
  // Where the stored block keeps them: d at 0, m at 2, then the fifth bits' word, then the quants.
  const int64_t qhFrom = at.mins >= 0 ? 4 : 2, qsFrom = qhFrom + (at.masks >= 0 ? 4 : 0);
  for (int64_t g = g0; g < g1; g++) {
    const uint8_t* rows = w + g * kPackRows * rowBytes;
    for (int64_t b = 0; b < nb; b++) {
      uint8_t* out = dst + (g * nb + b) * kPackRows * bb;
      uint64_t masks[8] = {};
      for (int64_t r = 0; r < kPackRows; r++) {
        const uint8_t* blk = rows + r * rowBytes + b * bb;
        std::memcpy(out + 2 * r, blk, 2);
        if (at.mins >= 0) std::memcpy(out + at.mins + 2 * r, blk + 2, 2);
        if (qtype == kQ8_0) {
          for (int64_t j = 0; j < 8; j++)
            for (int64_t m = 0; m < 4; m++) out[at.values + 64 * j + 4 * r + m] = uint8_t(blk[2 + 4 * j + m] ^ 0x80);
          continue;
        }
        for (int64_t j = 0; j < 4; j++) std::memcpy(out + at.values + 64 * j + 4 * r, blk + qsFrom + 4 * j, 4);
        if (at.masks >= 0) {
          uint32_t qh;
          std::memcpy(&qh, blk + qhFrom, 4);
          for (int u = 0; u < 8; u++)
            for (int m = 0; m < 4; m++)
              masks[u] |= uint64_t((qh >> (16 * (u / 4) + 4 * (u % 4) + m)) & 1) << (4 * r + m);
        }
      }
      if (at.masks >= 0) std::memcpy(out + at.masks, masks, sizeof(masks));
    }
  }
}

}  // namespace lk
