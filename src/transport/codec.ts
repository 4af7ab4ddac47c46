/**
 * Encoding and validated decoding of the frame format described in message.ts. Both are written
 * against plain byte arrays so the TCP and shared-memory transports share them; neither allocates
 * per message on the tensor path (the encoder reuses its layout, the decoder reuses one
 * DecodedMessage and its tensor objects; the only per-message objects are typed-array views).
 */
import { FrameError } from "./errors.js";
import type { FrameLimits } from "./limits.js";
import {
  align8,
  DTYPE_BY_CODE,
  DTYPE_CODES,
  dtypeBytes,
  FIXED_HEADER_BYTES,
  MAGIC,
  MAX_RANK,
  type Message,
  PROTOCOL_VERSION,
  type ReceivedMessage,
  TENSOR_DESCRIPTOR_BYTES,
  type TensorArray,
  type WireDType,
  type WireTensor,
} from "./message.js";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });
const EMPTY_INTS = new Int32Array(0);
const EMPTY_BYTES = new Uint8Array(0);

/** Bytes of everything before the tensor data, from fixed-header fields alone. */
export function metaBytes(nInts: number, controlBytes: number, nTensors: number): number {
  return FIXED_HEADER_BYTES + align8(4 * nInts + controlBytes) + TENSOR_DESCRIPTOR_BYTES * nTensors;
}

function expectedArray(dtype: WireDType): string {
  return dtype === "f32" ? "Float32Array" : dtype === "i32" ? "Int32Array" : "Uint16Array";
}

function arrayMatches(dtype: WireDType, data: TensorArray): boolean {
  if (dtype === "f32") return data instanceof Float32Array;
  if (dtype === "i32") return data instanceof Int32Array;
  return data instanceof Uint16Array;
}

/**
 * Measures and writes one outgoing frame. `prepare` validates the message against the limits
 * (throwing a FrameError that names the bad field) and fills in the layout; `writeMeta` and
 * `writeTensorData` then write into caller-provided memory.
 */
export class FrameEncoder {
  metaBytes = 0;
  frameBytes = 0;
  private control: Uint8Array = EMPTY_BYTES;
  private msg: Message | null = null;

  constructor(private readonly limits: FrameLimits) {}

  prepare(msg: Message, allowReservedType = false): void {
    const limits = this.limits;
    const type = msg.type;
    if (!Number.isInteger(type) || type < 0 || type > 0xff)
      throw new FrameError(`message.type must be an integer 0..255, got ${String(type)}`);
    if (type >= 0xf0 && !allowReservedType)
      throw new FrameError(`message.type ${type} is reserved for the transport (use 0..239)`);
    const flags = msg.flags ?? 0;
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff)
      throw new FrameError(`message.flags must be an integer 0..65535, got ${String(flags)}`);
    const rid = msg.requestId ?? 0;
    if (!Number.isInteger(rid) || rid < 0 || rid > 0xffffffff)
      throw new FrameError(`message.requestId must be a u32, got ${String(rid)}`);
    const nInts = msg.ints?.length ?? 0;
    if (nInts > limits.maxInts)
      throw new FrameError(`message.ints has ${nInts} values (limit ${limits.maxInts})`);
    if (msg.ints && !(msg.ints instanceof Int32Array)) {
      for (let i = 0; i < nInts; i++) {
        const v = msg.ints[i]!;
        if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
          throw new FrameError(`message.ints[${i}] must be an int32, got ${String(v)}`);
      }
    }
    this.control = EMPTY_BYTES;
    if (msg.control !== undefined) {
      const json = JSON.stringify(msg.control);
      if (json === undefined) throw new FrameError("message.control must be JSON-serializable");
      this.control = textEncoder.encode(json);
      if (this.control.length > limits.maxControlBytes)
        throw new FrameError(
          `message.control is ${this.control.length} bytes of JSON (limit ${limits.maxControlBytes})`,
        );
    }
    const tensors = msg.tensors;
    const nTensors = tensors?.length ?? 0;
    if (nTensors > limits.maxTensors)
      throw new FrameError(`message.tensors has ${nTensors} tensors (limit ${limits.maxTensors})`);
    let data = 0;
    for (let i = 0; i < nTensors; i++) {
      const t = tensors![i]!;
      if (DTYPE_CODES[t.dtype] === undefined)
        throw new FrameError(
          `message.tensors[${i}].dtype must be f32, f16, bf16 or i32, got ${String(t.dtype)}`,
        );
      if (!arrayMatches(t.dtype, t.data))
        throw new FrameError(
          `message.tensors[${i}].data must be a ${expectedArray(t.dtype)} for dtype ${t.dtype}`,
        );
      if (t.shape.length > MAX_RANK)
        throw new FrameError(`message.tensors[${i}].shape has rank ${t.shape.length} (limit ${MAX_RANK})`);
      let count = 1;
      for (let d = 0; d < t.shape.length; d++) {
        const dim = t.shape[d]!;
        if (!Number.isInteger(dim) || dim < 0 || dim > 0xffffffff)
          throw new FrameError(
            `message.tensors[${i}].shape[${d}] must be a non-negative integer, got ${dim}`,
          );
        count *= dim;
      }
      if (count !== t.data.length)
        throw new FrameError(
          `message.tensors[${i}] has shape [${t.shape.join(", ")}] (${count} elements) but ${t.data.length} values`,
        );
      const bytes = count * dtypeBytes(t.dtype);
      if (bytes > limits.maxTensorBytes)
        throw new FrameError(`message.tensors[${i}] is ${bytes} bytes (limit ${limits.maxTensorBytes})`);
      data += align8(bytes);
    }
    this.metaBytes = metaBytes(nInts, this.control.length, nTensors);
    this.frameBytes = this.metaBytes + data;
    if (this.frameBytes > limits.maxFrameBytes)
      throw new FrameError(`message is ${this.frameBytes} bytes framed (limit ${limits.maxFrameBytes})`);
    this.msg = msg;
  }

  /** Writes the meta section (metaBytes) of the prepared message at dst[at..]. */
  writeMeta(dst: Uint8Array, view: DataView, at: number): void {
    const msg = this.msg!;
    const nInts = msg.ints?.length ?? 0;
    const nTensors = msg.tensors?.length ?? 0;
    view.setUint32(at, MAGIC, true);
    view.setUint8(at + 4, PROTOCOL_VERSION);
    view.setUint8(at + 5, msg.type);
    view.setUint16(at + 6, msg.flags ?? 0, true);
    view.setUint32(at + 8, msg.requestId ?? 0, true);
    view.setUint32(at + 12, this.frameBytes - FIXED_HEADER_BYTES, true);
    view.setUint16(at + 16, nInts, true);
    view.setUint16(at + 18, nTensors, true);
    view.setUint32(at + 20, this.control.length, true);
    let p = at + FIXED_HEADER_BYTES;
    for (let i = 0; i < nInts; i++, p += 4) view.setInt32(p, msg.ints![i]!, true);
    dst.set(this.control, p);
    p += this.control.length;
    const descStart = at + FIXED_HEADER_BYTES + align8(4 * nInts + this.control.length);
    dst.fill(0, p, descStart);
    dst.fill(0, descStart, descStart + TENSOR_DESCRIPTOR_BYTES * nTensors);
    for (let i = 0; i < nTensors; i++) {
      const t = msg.tensors![i]!;
      const d = descStart + i * TENSOR_DESCRIPTOR_BYTES;
      view.setUint8(d, DTYPE_CODES[t.dtype]);
      view.setUint8(d + 1, t.shape.length);
      for (let k = 0; k < t.shape.length; k++) view.setUint32(d + 8 + 4 * k, t.shape[k]!, true);
    }
  }

  /** Copies the prepared message's tensor data (with zero padding) to dst[at..] (at = frame start + metaBytes). */
  writeTensorData(dst: Uint8Array, at: number): void {
    const tensors = this.msg!.tensors;
    if (!tensors) return;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!.data;
      const n = t.byteLength;
      dst.set(new Uint8Array(t.buffer, t.byteOffset, n), at);
      const padded = align8(n);
      if (padded !== n) dst.fill(0, at + n, at + padded);
      at += padded;
    }
  }

  /** The prepared message (for transports that hand tensor views to the socket themselves). */
  get message(): Message {
    return this.msg!;
  }

  /** Drops the reference to the last message so its buffers are not kept alive. */
  release(): void {
    this.msg = null;
  }
}

/** One tensor of a DecodedMessage; reused across messages. */
class DecodedTensor implements WireTensor {
  dtype: WireDType = "f32";
  shape: number[] = [];
  data: TensorArray = new Float32Array(0);
  /** Data position relative to the frame start, and its byte length. */
  offset = 0;
  byteLength = 0;
}

/** Fields of the fixed header the receiver needs before the rest of the frame has arrived. */
export interface FixedHeader {
  type: number;
  flags: number;
  requestId: number;
  payloadBytes: number;
  nInts: number;
  nTensors: number;
  controlBytes: number;
}

/**
 * Validates the 24-byte fixed header at view[at..] and fills `out`. Throws a FrameError naming
 * the problem; checks every count against the limits before anything is buffered.
 */
export function readFixedHeader(view: DataView, at: number, limits: FrameLimits, out: FixedHeader): void {
  const magic = view.getUint32(at, true);
  if (magic !== MAGIC) throw new FrameError(`bad magic 0x${magic.toString(16).padStart(8, "0")}`);
  const version = view.getUint8(at + 4);
  if (version !== PROTOCOL_VERSION)
    throw new FrameError(`unsupported protocol version ${version} (this side speaks ${PROTOCOL_VERSION})`);
  out.type = view.getUint8(at + 5);
  out.flags = view.getUint16(at + 6, true);
  out.requestId = view.getUint32(at + 8, true);
  out.payloadBytes = view.getUint32(at + 12, true);
  out.nInts = view.getUint16(at + 16, true);
  out.nTensors = view.getUint16(at + 18, true);
  out.controlBytes = view.getUint32(at + 20, true);
  const frame = FIXED_HEADER_BYTES + out.payloadBytes;
  if (frame > limits.maxFrameBytes)
    throw new FrameError(`frame of ${frame} bytes exceeds the limit ${limits.maxFrameBytes}`);
  if (out.payloadBytes % 8 !== 0)
    throw new FrameError(`payload length ${out.payloadBytes} is not a multiple of 8`);
  if (out.nInts > limits.maxInts)
    throw new FrameError(`${out.nInts} header ints exceed the limit ${limits.maxInts}`);
  if (out.nTensors > limits.maxTensors)
    throw new FrameError(`${out.nTensors} tensors exceed the limit ${limits.maxTensors}`);
  if (out.controlBytes > limits.maxControlBytes)
    throw new FrameError(
      `control payload of ${out.controlBytes} bytes exceeds the limit ${limits.maxControlBytes}`,
    );
  if (metaBytes(out.nInts, out.controlBytes, out.nTensors) > frame)
    throw new FrameError(`frame of ${frame} bytes is too short for its own header sections`);
}

/**
 * The receiver's reusable message. `parseMeta` validates the meta section and lays out where each
 * tensor's data lies; the transport then points each tensor at its bytes with `attach`.
 */
export class DecodedMessage implements ReceivedMessage, FixedHeader {
  type = 0;
  flags = 0;
  requestId = 0;
  payloadBytes = 0;
  nInts = 0;
  nTensors = 0;
  controlBytes = 0;
  ints: Int32Array = EMPTY_INTS;
  control: unknown = undefined;
  readonly tensors: DecodedTensor[] = [];
  private readonly pool: DecodedTensor[] = [];

  /**
   * Parses the meta section (already validated fixed header in `this`). `meta` holds the frame's
   * first metaBytes(...) bytes starting at meta[at]; `at` must be 4-aligned in meta's buffer.
   */
  parseMeta(meta: Uint8Array, view: DataView, at: number, limits: FrameLimits): void {
    const frameBytes = FIXED_HEADER_BYTES + this.payloadBytes;
    let p = at + FIXED_HEADER_BYTES;
    this.ints = this.nInts === 0 ? EMPTY_INTS : new Int32Array(meta.buffer, meta.byteOffset + p, this.nInts);
    p += 4 * this.nInts;
    this.control = undefined;
    if (this.controlBytes > 0) {
      let text: string;
      try {
        text = textDecoder.decode(meta.subarray(p, p + this.controlBytes));
      } catch {
        throw new FrameError("control payload is not valid UTF-8");
      }
      try {
        this.control = JSON.parse(text);
      } catch {
        throw new FrameError("control payload is not valid JSON");
      }
    }
    const afterControl = p + this.controlBytes;
    p = at + FIXED_HEADER_BYTES + align8(4 * this.nInts + this.controlBytes);
    for (let z = afterControl; z < p; z++)
      if (meta[z] !== 0) throw new FrameError("nonzero padding after control");
    let dataAt = metaBytes(this.nInts, this.controlBytes, this.nTensors);
    this.tensors.length = 0;
    for (let i = 0; i < this.nTensors; i++, p += TENSOR_DESCRIPTOR_BYTES) {
      const dtype = DTYPE_BY_CODE[view.getUint8(p)];
      if (dtype === undefined) throw new FrameError(`tensor ${i} has unknown dtype code ${view.getUint8(p)}`);
      const rank = view.getUint8(p + 1);
      if (rank > MAX_RANK) throw new FrameError(`tensor ${i} has rank ${rank} (limit ${MAX_RANK})`);
      if (view.getUint16(p + 2, true) !== 0 || view.getUint32(p + 4, true) !== 0)
        throw new FrameError(`tensor ${i} descriptor has nonzero reserved bytes`);
      const t = this.pool[i] ?? (this.pool[i] = new DecodedTensor());
      t.dtype = dtype;
      t.shape.length = rank;
      let count = 1;
      for (let k = 0; k < MAX_RANK; k++) {
        const dim = view.getUint32(p + 8 + 4 * k, true);
        if (k < rank) {
          t.shape[k] = dim;
          count *= dim;
        } else if (dim !== 0) throw new FrameError(`tensor ${i} has a nonzero dim beyond its rank`);
      }
      const bytes = count * dtypeBytes(dtype);
      if (bytes > limits.maxTensorBytes)
        throw new FrameError(`tensor ${i} of ${bytes} bytes exceeds the limit ${limits.maxTensorBytes}`);
      t.offset = dataAt;
      t.byteLength = bytes;
      dataAt += align8(bytes);
      if (dataAt > frameBytes) throw new FrameError(`tensor ${i} runs past the end of the frame`);
      this.tensors.push(t);
    }
    if (dataAt !== frameBytes)
      throw new FrameError(`frame has ${frameBytes - dataAt} bytes beyond its last tensor`);
  }

  /** Points tensor i at `byteLength` bytes of `buffer` from `byteOffset` (aligned to its element size). */
  attach(i: number, buffer: ArrayBufferLike, byteOffset: number): void {
    const t = this.tensors[i]!;
    const n = t.byteLength / dtypeBytes(t.dtype);
    t.data =
      t.dtype === "f32"
        ? new Float32Array(buffer, byteOffset, n)
        : t.dtype === "i32"
          ? new Int32Array(buffer, byteOffset, n)
          : new Uint16Array(buffer, byteOffset, n);
  }
}
