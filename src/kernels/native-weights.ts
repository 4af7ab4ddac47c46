// What prepareWeight and prepareExperts hand back on the native backend: the loader's buffers as
// they are (float or block formats), with the addon's codes, and for block formats where the
// variant has the row path, the packed copy decode reads.
import type { DType, QuantType, TensorData } from "../model/tensor.js";
import type { PreparedExperts, PreparedWeight } from "./backend.js";
import { dtypeCode, type NativeAddon, QUANT_CODE } from "./native-addon.js";

/**
 * A weight in a block format, as stored (the product quantizes the activations instead), and where
 * the variant has a row path for 16 rows at once, the same rows packed for it (`packed`: an extra
 * copy of the matrix, which decode reads instead of `data`).
 */
export class NativeQuantWeight implements PreparedWeight {
  readonly code: number;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: QuantType,
    readonly data: Uint8Array,
    readonly packed: Uint8Array | undefined,
  ) {
    this.code = QUANT_CODE[dtype];
  }
}

/** Experts in a block format: their bytes one after another, each [rows, cols] as stored. */
export class NativeQuantExperts implements PreparedExperts {
  readonly code: number;
  constructor(
    readonly count: number,
    readonly rows: number,
    readonly cols: number,
    readonly dtype: QuantType,
    readonly data: Uint8Array,
  ) {
    this.code = QUANT_CODE[dtype];
  }
}

/** A weight as the native kernels use it: the loader's buffer as is (no copy, no prepacking yet). */
export class NativeWeight implements PreparedWeight {
  readonly code: number;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: DType,
    readonly data: TensorData,
  ) {
    this.code = dtypeCode(dtype, "prepareWeight");
  }
}

/**
 * One MoE projection's experts for the native kernels: the addon's handle holds raw pointers to
 * their data, so this object keeps the arrays themselves alive as long as the handle.
 */
export class NativeExperts implements PreparedExperts {
  readonly handle: object;
  constructor(
    readonly count: number,
    readonly rows: number,
    readonly cols: number,
    readonly dtype: DType,
    readonly data: readonly TensorData[],
    addon: NativeAddon,
  ) {
    this.handle = addon.expertSet(data, dtypeCode(dtype, "prepareExperts"), rows, cols);
  }
}
