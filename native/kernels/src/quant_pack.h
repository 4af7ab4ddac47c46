// Weights in a 32-value block format packed with 16 rows in the lanes of a 512-bit vector, for the
// VNNI row path that multiplies 16 rows by a token at once (quant_packed_rows.h).
//
// Why: the row paths read one row's blocks at a time and each block's scale has to meet the
// block's integer dot product, so per pair of blocks a row pays a permute of its scales, a
// conversion and an FMA beside its one vpdpbusd, and per row a horizontal sum; rows of 576 values
// (SmolLM2's) also pay a group's setup twice. With 16 rows in the lanes each vpdpbusd takes four
// values of 16 rows against the token's four values broadcast from memory, one block's 16 scales
// are one f16 vector, and the 16 results come out in lanes (no horizontal sums).
//
// Layout: rows in groups of 16 (the rows past the last whole group stay in the original bytes);
// group g holds its blocks one after another, block b of the group taking exactly the 16 rows'
// original bytes of that block (16 * blockBytes), laid out as (offsets: packedBlock):
//   [0, 32)   the 16 rows' f16 scales d, row r at 2r
//   Q4_1, Q5_1: then the 16 rows' f16 mins m, the same way
//   Q5_0, Q5_1: then eight 64-bit masks of the fifth bits, mask u = 4h + j (h = 0: values
//             4j..4j+3, h = 1: values 16 + 4j..16 + 4j + 3) with bit 4r + m the fifth bit of
//             value 16h + 4j + m of row r (the byte lanes of the nibble vectors below)
//   then the quants as 64-byte vectors, 4 bytes a row (lane r = row r):
//     Q8_0: vector j (0..7) holds values 4j..4j+3, each as q + 128 (unsigned, for vpdpbusd)
//     the nibble formats (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL): vector j (0..3) holds the packed bytes
//     4j..4j+3 (low nibbles: values 4j..4j+3, high nibbles: values 16 + 4j..16 + 4j + 3), as stored
// So a packed matrix is exactly as long as the rows it packs.
#pragma once
#include <cstdint>

#include "quant_kernels.h"

namespace lk {

constexpr int64_t kPackRows = 16;

// The formats the packed layout holds: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL.
bool packableType(int qtype);

// Where a packed block's parts start: its mins and fifth-bit masks (-1 where the format has none)
// and its quants.
struct PackedBlock {
  int64_t mins, masks, values;
};
constexpr PackedBlock packedBlock(int qtype) {
  const bool min = qtype == kQ4_1 || qtype == kQ5_1, five = qtype == kQ5_0 || qtype == kQ5_1;
  const int64_t masks = min ? 64 : 32;
  return {min ? 32 : -1, five ? masks : -1, masks + (five ? 64 : 0)};
}

// Rows [16 g0, 16 g1) of w [rows, cols] (a packable format) packed into dst, at group g0's place.
void packRowGroups(uint8_t* dst, const uint8_t* w, int qtype, int64_t cols, int64_t g0, int64_t g1);

}  // namespace lk
