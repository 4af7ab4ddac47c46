/**
 * The one message format both transports carry: a fixed versioned header, a few int32 "header
 * ints" for per-message metadata (layer, counts, ids), an optional small JSON control payload for
 * rare control messages, and a list of tensors.
 *
 * Wire layout (little-endian, every section starts 8-byte aligned relative to the frame):
 *
 *   offset  size  field
 *   0       4     magic "LMNA" (0x414e4d4c read as u32 LE)
 *   4       1     protocol version (PROTOCOL_VERSION)
 *   5       1     message type (0..0xef application, 0xf0..0xff reserved by the transport)
 *   6       2     flags (application bits 0..11; bit 15 = FLAG_ERROR)
 *   8       4     request id (u32; 0 = not a request/response)
 *   12      4     payload length: bytes after this 24-byte header
 *   16      2     number of header ints
 *   18      2     number of tensors
 *   20      4     control payload length (bytes of UTF-8 JSON, 0 = none)
 *   24            header ints (i32 each), then the control JSON, zero-padded to 8
 *                 tensor descriptors, TENSOR_DESCRIPTOR_BYTES each:
 *                   u8 dtype code, u8 rank, u16 0, u32 0, u32 dims[MAX_RANK] (unused dims 0)
 *                 tensor data, each tensor zero-padded to 8
 *
 * Everything before the tensor data (the "meta" section) has a length known from the fixed
 * header alone, so a receiver can validate it before touching the rest.
 */

export const MAGIC = 0x414e4d4c;
export const PROTOCOL_VERSION = 1;
export const FIXED_HEADER_BYTES = 24;
export const MAX_RANK = 8;
export const TENSOR_DESCRIPTOR_BYTES = 8 + 4 * MAX_RANK;

/** Message types 0xf0..0xff belong to the transport (handshake, heartbeat, goodbye). */
export const FIRST_RESERVED_TYPE = 0xf0;
/** Set on a response that reports a failure; its control payload is `{ message: string }`. */
export const FLAG_ERROR = 0x8000;

export type WireDType = "f32" | "f16" | "bf16" | "i32";
/** f16 and bf16 travel as raw 16-bit words. */
export type TensorArray = Float32Array | Uint16Array | Int32Array;

export const DTYPE_CODES: Readonly<Record<WireDType, number>> = { f32: 1, f16: 2, bf16: 3, i32: 4 };
export const DTYPE_BY_CODE: readonly (WireDType | undefined)[] = [undefined, "f32", "f16", "bf16", "i32"];

export function dtypeBytes(dtype: WireDType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : 4;
}

export interface WireTensor {
  readonly dtype: WireDType;
  /** Row-major, outermost first; up to MAX_RANK dims; [] is a scalar. */
  readonly shape: readonly number[];
  /** Float32Array for f32, Uint16Array for f16/bf16, Int32Array for i32; length = product(shape). */
  readonly data: TensorArray;
}

/** What a sender hands to `Channel.send`. Only `type` is required. */
export interface Message {
  /** 0..0xef, application-defined. */
  readonly type: number;
  /** 0..0xffff; FLAG_ERROR marks an error response. */
  readonly flags?: number;
  /** u32; RpcClient sets it for requests, responders copy it into their reply. */
  readonly requestId?: number;
  readonly ints?: Int32Array | readonly number[];
  /** Any JSON value, for rare control messages; keep it small (limits.maxControlBytes). */
  readonly control?: unknown;
  readonly tensors?: readonly WireTensor[];
}

/**
 * A message as a receiver sees it. The object, its `ints` and its tensors' `data` are views into
 * transport-owned memory (the shared-memory ring, or a socket's receive buffers) and are only
 * valid until the receive callback returns (or, for `ShmChannel.receiveSync`, until the next
 * receive). Copy what must outlive that: `copyMessage` does it for tests and rare paths.
 */
export interface ReceivedMessage {
  readonly type: number;
  readonly flags: number;
  readonly requestId: number;
  readonly ints: Int32Array;
  /** Parsed JSON, or undefined when the frame carried none. Validate it: see `parseControl`. */
  readonly control: unknown;
  readonly tensors: readonly WireTensor[];
}

export function align8(n: number): number {
  return (n + 7) & ~7;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i]!;
  return n;
}

/** A deep copy that owns its memory: for keeping a received message beyond its callback. */
export function copyMessage(m: ReceivedMessage): Message & ReceivedMessage {
  return {
    type: m.type,
    flags: m.flags,
    requestId: m.requestId,
    ints: m.ints.slice(),
    control: m.control === undefined ? undefined : structuredClone(m.control),
    tensors: m.tensors.map((t) => ({ dtype: t.dtype, shape: t.shape.slice(), data: t.data.slice() })),
  };
}
