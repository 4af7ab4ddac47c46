import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import type { ModelConfig } from "../../src/model/config.js";
import {
  allocTensorData,
  type FloatTensor,
  type QuantTensor,
  type Tensor,
  toFloat32,
} from "../../src/model/tensor.js";
import { type RawTensor, rawTensor } from "./raw-safetensors.js";

/**
 * Writes a gpt-oss model's per-expert weights the way its Hugging Face checkpoints stack them,
 * from transformers' GptOssExperts: gate_up_proj [E, hidden, 2·width] with gate in the even
 * columns and up in the odd ones, down_proj [E, width, hidden] (x·W), biases [E, 2·width] and
 * [E, hidden]; or, with `mxfp4`, the released form: *_blocks [E, rows, cols/32, 16] (the even
 * element of each pair in the low nibble) and *_scales [E, rows, cols/32], rows being outputs.
 * Returns the tensors to write and what the loader must hand back (the MXFP4 experts as ggml's
 * blocks, each being the float weight quantized).
 */
export function stackGptOssExperts(
  c: ModelConfig,
  weights: ReadonlyMap<string, Tensor>,
  mxfp4 = false,
): { stored: RawTensor[]; loaded: Map<string, Tensor> } {
  const E = c.moe!.numExperts;
  const I = c.moe!.expertIntermediateSize;
  const H = c.hiddenSize;
  const isExpert = (n: string) => /\.mlp\.experts\.\d+\./.test(n);
  const stored = [...weights.values()].filter((t) => !isExpert(t.name)).map(rawTensor);
  const loaded = new Map(weights);
  const get = (n: string) => weights.get(n) as FloatTensor;
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.mlp.experts`;
    const ex = (e: number, proj: string, what: string) => get(`${p}.${e}.${proj}.${what}`);
    const dtype = ex(0, "gate_proj", "weight").dtype;
    const gub = allocTensorData(dtype, E * 2 * I);
    const db = allocTensorData(dtype, E * H);
    for (let e = 0; e < E; e++)
      for (let i = 0; i < I; i++) {
        gub[e * 2 * I + 2 * i] = ex(e, "gate_proj", "bias").data[i]!;
        gub[e * 2 * I + 2 * i + 1] = ex(e, "up_proj", "bias").data[i]!;
      }
    for (let e = 0; e < E; e++) db.set(ex(e, "down_proj", "bias").data, e * H);
    const float = (name: string, shape: number[], data: FloatTensor["data"]) =>
      rawTensor({ name, dtype, shape, data });
    stored.push(float(`${p}.gate_up_proj_bias`, [E, 2 * I], gub), float(`${p}.down_proj_bias`, [E, H], db));
    if (!mxfp4) {
      const gu = allocTensorData(dtype, E * H * 2 * I);
      const down = allocTensorData(dtype, E * I * H);
      for (let e = 0; e < E; e++) {
        const g = ex(e, "gate_proj", "weight").data;
        const u = ex(e, "up_proj", "weight").data;
        const d = ex(e, "down_proj", "weight").data;
        for (let i = 0; i < I; i++)
          for (let h = 0; h < H; h++) {
            gu[e * H * 2 * I + h * 2 * I + 2 * i] = g[i * H + h]!;
            gu[e * H * 2 * I + h * 2 * I + 2 * i + 1] = u[i * H + h]!;
            down[e * I * H + i * H + h] = d[h * I + i]!;
          }
      }
      stored.push(float(`${p}.gate_up_proj`, [E, H, 2 * I], gu), float(`${p}.down_proj`, [E, I, H], down));
      continue;
    }
    // Quantize each expert's rows; the stacked rows interleave gate and up.
    const quant = (e: number, proj: string, cols: number): Uint8Array => {
      const t = ex(e, proj, "weight");
      const q = quantizeMatrix("mxfp4", toFloat32(t), cols);
      const rows = t.shape[0]!;
      loaded.set(t.name, {
        name: t.name,
        dtype: "mxfp4",
        shape: [rows, cols],
        data: q,
      } satisfies QuantTensor);
      return q;
    };
    const guRows = Array.from(
      { length: E },
      (_, e) => [quant(e, "gate_proj", H), quant(e, "up_proj", H)] as const,
    );
    const dRows = Array.from({ length: E }, (_, e) => quant(e, "down_proj", I));
    const pack = (rows: number, cols: number, src: (e: number, r: number) => [Uint8Array, number]) => {
      const perRow = cols / 32;
      const blocks = new Uint8Array(E * rows * perRow * 16);
      const scales = new Uint8Array(E * rows * perRow);
      for (let e = 0; e < E; e++)
        for (let r = 0; r < rows; r++) {
          const [q, row] = src(e, r);
          for (let b = 0; b < perRow; b++) {
            const at = (row * perRow + b) * 17;
            const to = (e * rows + r) * perRow + b;
            scales[to] = q[at]!;
            // ggml: element j low nibble of byte j, element j + 16 its high nibble.
            const v = (j: number) => (j < 16 ? q[at + 1 + j]! & 15 : q[at + 1 + j - 16]! >> 4);
            for (let k = 0; k < 16; k++) blocks[to * 16 + k] = v(2 * k) | (v(2 * k + 1) << 4);
          }
        }
      return { blocks, scales, perRow };
    };
    const gu = pack(2 * I, H, (e, r) => [guRows[e]![r % 2]!, r >> 1]);
    const dn = pack(H, I, (e, r) => [dRows[e]!, r]);
    const bytes = (name: string, shape: number[], data: Uint8Array): RawTensor => ({
      name,
      dtype: "U8",
      shape,
      bytes: data,
    });
    stored.push(
      bytes(`${p}.gate_up_proj_blocks`, [E, 2 * I, gu.perRow, 16], gu.blocks),
      bytes(`${p}.gate_up_proj_scales`, [E, 2 * I, gu.perRow], gu.scales),
      bytes(`${p}.down_proj_blocks`, [E, H, dn.perRow, 16], dn.blocks),
      bytes(`${p}.down_proj_scales`, [E, H, dn.perRow], dn.scales),
    );
  }
  return { stored, loaded };
}
