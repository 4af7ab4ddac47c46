import type { ModelConfig } from "./config.js";
import { sameShape } from "./expected-tensors.js";
import type { SafetensorsCheckpoint } from "./safetensors-checkpoint.js";
import {
  allocSharedBytes,
  allocTensorData,
  type FloatTensor,
  type QuantTensor,
  type Tensor,
} from "./tensor.js";
import { expertNames } from "./weight-names.js";

/**
 * gpt-oss checkpoints stack each layer's experts: `gate_up_proj` [experts, hidden, 2·width] with
 * gate and up in alternate columns, `down_proj` [experts, width, hidden] (both x·W, not Linear's
 * W·x), and their biases [experts, 2·width] / [experts, hidden]. The released checkpoints store the
 * two matrices as MXFP4 instead: `*_blocks` [experts, rows, cols/32, 16] (two e2m1 values a byte,
 * the even element in the low nibble) and `*_scales` [experts, rows, cols/32] (E8M0), rows being
 * the output features (gate and up alternating). Both are split here into the per-expert Linear
 * weights the graph names (weight-names.ts); MXFP4 stays MXFP4, repacked into ggml's block layout
 * (one scale byte, then element j in the low nibble of byte j and element j + 16 in its high one).
 */

const MXFP4_BLOCK = 32;
const MXFP4_BLOCK_BYTES = 17;

/** Layer l's stacked expert tensors as the checkpoint names them. */
function stackedNames(l: number) {
  const p = `model.layers.${l}.mlp.experts`;
  return {
    gateUp: `${p}.gate_up_proj`,
    gateUpBias: `${p}.gate_up_proj_bias`,
    down: `${p}.down_proj`,
    downBias: `${p}.down_proj_bias`,
  };
}

/** Whether a graph weight name is one of a gpt-oss layer's per-expert tensors (made here). */
export function isSplitExpertName(name: string): boolean {
  return /^model\.layers\.\d+\.mlp\.experts\.\d+\./.test(name);
}

type Form = "float" | "mxfp4";

/**
 * Checks layer l's stacked experts against the config on the headers alone and says how they are
 * stored; throws naming the tensor and the shape it should have.
 */
export function checkStackedExperts(
  ckpt: SafetensorsCheckpoint,
  c: ModelConfig,
  l: number,
  dir: string,
): Form {
  const { numExperts: E, expertIntermediateSize: I } = c.moe!;
  const H = c.hiddenSize;
  const n = stackedNames(l);
  const expect = (name: string, shape: readonly number[], dtype?: string) => {
    const found = ckpt.describe(name);
    if (!found) throw new Error(`${dir}: missing tensor "${name}" (expected shape [${shape.join(", ")}])`);
    if (!sameShape(found.entry.shape, shape))
      throw new Error(
        `${found.file}: tensor "${name}" has shape [${found.entry.shape.join(", ")}], but the config implies [${shape.join(", ")}]`,
      );
    if (dtype !== undefined && found.entry.dtype !== dtype)
      throw new Error(`${found.file}: tensor "${name}" is ${found.entry.dtype}, expected ${dtype}`);
    if (dtype === undefined && (found.entry.dtype === "u8" || found.entry.dtype === "f8_e4m3"))
      throw new Error(`${found.file}: tensor "${name}" is ${found.entry.dtype}, expected floats`);
  };
  expect(n.gateUpBias, [E, 2 * I]);
  expect(n.downBias, [E, H]);
  if (ckpt.describe(n.gateUp)) {
    expect(n.gateUp, [E, H, 2 * I]);
    expect(n.down, [E, I, H]);
    return "float";
  }
  if (H % MXFP4_BLOCK !== 0 || I % MXFP4_BLOCK !== 0)
    throw new Error(`${dir}: MXFP4 experts need hidden (${H}) and width (${I}) in whole blocks of 32`);
  expect(`${n.gateUp}_blocks`, [E, 2 * I, H / MXFP4_BLOCK, 16], "u8");
  expect(`${n.gateUp}_scales`, [E, 2 * I, H / MXFP4_BLOCK], "u8");
  expect(`${n.down}_blocks`, [E, H, I / MXFP4_BLOCK, 16], "u8");
  expect(`${n.down}_scales`, [E, H, I / MXFP4_BLOCK], "u8");
  return "mxfp4";
}

/** The checkpoint tensors layer l's experts are read from (for progress by bytes). */
export function stackedSources(ckpt: SafetensorsCheckpoint, l: number): string[] {
  const n = stackedNames(l);
  const mats = ckpt.describe(n.gateUp)
    ? [n.gateUp, n.down]
    : [`${n.gateUp}_blocks`, `${n.gateUp}_scales`, `${n.down}_blocks`, `${n.down}_scales`];
  return [...mats, n.gateUpBias, n.downBias];
}

/** Layer l's experts as per-expert gate/up/down weights and biases under the graph's names. */
export function readStackedExperts(
  ckpt: SafetensorsCheckpoint,
  c: ModelConfig,
  l: number,
  form: Form,
): Tensor[] {
  const { numExperts: E, expertIntermediateSize: I } = c.moe!;
  const H = c.hiddenSize;
  const n = stackedNames(l);
  const names = expertNames(c, l);
  const out: Tensor[] = [];
  const gub = ckpt.read(n.gateUpBias) as FloatTensor;
  const db = ckpt.read(n.downBias) as FloatTensor;
  for (let e = 0; e < E; e++) {
    out.push(pick(gub, names.biases!.gate[e]!, [I], (i) => e * 2 * I + 2 * i));
    out.push(pick(gub, names.biases!.up[e]!, [I], (i) => e * 2 * I + 2 * i + 1));
    out.push(pick(db, names.biases!.down[e]!, [H], (i) => e * H + i));
  }
  if (form === "float") {
    const gu = ckpt.read(n.gateUp) as FloatTensor;
    const down = ckpt.read(n.down) as FloatTensor;
    for (let e = 0; e < E; e++) {
      // Linear's W[r, k] is the stacked x·W's [k, r].
      const base = e * H * 2 * I;
      out.push(pick(gu, names.gate[e]!, [I, H], (j) => base + (j % H) * 2 * I + 2 * Math.floor(j / H)));
      out.push(pick(gu, names.up[e]!, [I, H], (j) => base + (j % H) * 2 * I + 2 * Math.floor(j / H) + 1));
      out.push(pick(down, names.down[e]!, [H, I], (j) => e * I * H + (j % I) * H + Math.floor(j / I)));
    }
    return out;
  }
  const guBlocks = ckpt.readBytes(`${n.gateUp}_blocks`);
  const guScales = ckpt.readBytes(`${n.gateUp}_scales`);
  const dBlocks = ckpt.readBytes(`${n.down}_blocks`);
  const dScales = ckpt.readBytes(`${n.down}_scales`);
  for (let e = 0; e < E; e++) {
    // Stacked rows 2i (gate) and 2i + 1 (up) of expert e.
    out.push(mxfp4Rows(guBlocks, guScales, names.gate[e]!, I, H, (i) => e * 2 * I + 2 * i));
    out.push(mxfp4Rows(guBlocks, guScales, names.up[e]!, I, H, (i) => e * 2 * I + 2 * i + 1));
    out.push(mxfp4Rows(dBlocks, dScales, names.down[e]!, H, I, (i) => e * H + i));
  }
  return out;
}

/** A new tensor of `shape` whose element j is the stored tensor's element at(j), in its dtype. */
function pick(
  src: FloatTensor,
  name: string,
  shape: readonly number[],
  at: (j: number) => number,
): FloatTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = allocTensorData(src.dtype, count);
  for (let j = 0; j < count; j++) data[j] = src.data[at(j)]!;
  return { name, dtype: src.dtype, shape, data };
}

/**
 * An MXFP4 matrix of `rows` × `cols` from stacked rows row(i) of the checkpoint's blocks and
 * scales, each 32-value block repacked into ggml's 17 bytes.
 */
function mxfp4Rows(
  blocks: Uint8Array,
  scales: Uint8Array,
  name: string,
  rows: number,
  cols: number,
  row: (i: number) => number,
): QuantTensor {
  const perRow = cols / MXFP4_BLOCK;
  const data = allocSharedBytes(rows * perRow * MXFP4_BLOCK_BYTES);
  const values = new Uint8Array(MXFP4_BLOCK);
  for (let i = 0; i < rows; i++) {
    const r = row(i);
    for (let b = 0; b < perRow; b++) {
      const src = (r * perRow + b) * 16;
      const dst = (i * perRow + b) * MXFP4_BLOCK_BYTES;
      for (let k = 0; k < 16; k++) {
        values[2 * k] = blocks[src + k]! & 15;
        values[2 * k + 1] = blocks[src + k]! >> 4;
      }
      data[dst] = scales[r * perRow + b]!;
      for (let j = 0; j < 16; j++) data[dst + 1 + j] = values[j]! | (values[j + 16]! << 4);
    }
  }
  return { name, dtype: "mxfp4", shape: [rows, cols], data };
}
