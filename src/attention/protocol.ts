import { z } from "zod";
import { KV_DTYPES } from "../kernels/kv-cache.js";

/**
 * The attention-worker protocol, carried as transport Messages (src/transport/message.ts).
 * One model-side engine drives one connection; the worker keeps one KV cache per connection.
 *
 *   CONFIGURE (rpc)   control: ConfigureRequest            → reply control: ConfigureReply
 *   RESERVE           ints [seqId, numTokens]                (ordered before the next STEP)
 *   RELEASE           ints [seqId]
 *   RESET             release every sequence
 *   STEP              ints [tag, nTokens, nSeqs]; tensors seqIds, seqStart, positions (i32)
 *   Q                 ints [tag, layer]; tensor q [nTokens, heads·headDim] — early q starts here
 *   KV (rpc)          ints [tag, layer]; tensors k, v         → reply OUT
 *   OUT (reply)       ints [tag, layer, computeMicros]; tensor out [nTokens, heads·headDim]
 *   STATS (rpc)       → reply control: WorkerStats
 *   ATTACH            ints [seqId, n, windowFrom, block × n, windowBlock × (n − windowFrom)]
 *                     a new sequence starts on these cached-prefix blocks (the window part only
 *                     where the worker keeps the window layers' blocks in a pool of their own;
 *                     windowFrom is 0 and it is empty otherwise; prefix-pools.ts)
 *   RETAIN            ints [seqId, index, pools]  the sequence's block at index holds a cached
 *                     prefix, in the global pool (pools & 1) and the window pool (pools & 2)
 *
 * `tag` names the micro-batch (several are in flight under staggered pipelining). Errors come
 * back as transport error replies (FLAG_ERROR) and close nothing but that request.
 *
 * Native data plane (same-host connections): CONFIGURE may name a shared-memory segment; a worker
 * that maps it replies `dataPlane: true`, and from then on STEP, Q, KV and OUT travel through
 * that segment, written and read by native code on both sides (src/attention/data-plane-*.ts,
 * native/kernels/src/dataplane_*.cpp); the channel keeps the control messages. Block tables
 * then come with each step from the model side's mirror, so RESERVE/RELEASE only keep the
 * worker's own accounting (STATS) in step.
 */
// Version 4: CONFIGURE's kvDtype may be "int8" (kv-cache.ts). Version 5: RESERVE carries the
// tokens held ahead of the step's end, [seqId, numTokens, ahead] (KvAdmission.reserve). Version 6:
// CONFIGURE may carry attention sinks (gpt-oss), which change every result of the layers. Version 7:
// ATTACH and RETAIN (prefix caching; block-allocator.ts), which a worker must apply to stay in step.
// Version 8: ATTACH and RETAIN cover a window layers' pool too (prefix-pools.ts).
export const ATTENTION_PROTOCOL_VERSION = 8;

export const MsgType = {
  CONFIGURE: 1,
  RESERVE: 2,
  RELEASE: 3,
  RESET: 4,
  STEP: 5,
  Q: 6,
  KV: 7,
  OUT: 8,
  STATS: 9,
  ATTACH: 10,
  RETAIN: 11,
} as const;

export const configureRequestSchema = z.strictObject({
  version: z.literal(ATTENTION_PROTOCOL_VERSION),
  numLayers: z.number().int().min(1).max(1024),
  /** Query heads this worker computes. */
  numHeads: z.number().int().min(1).max(4096),
  /** KV heads this worker stores. */
  numKvHeads: z.number().int().min(1).max(4096),
  headDim: z.number().int().min(1).max(1024),
  blockSize: z.number().int().min(1).max(4096),
  /** int8 needs a block size that is a multiple of 4 (the worker's cache refuses others by name). */
  kvDtype: z.enum(KV_DTYPES),
  maxContext: z
    .number()
    .int()
    .min(1)
    .max(1 << 24),
  maxTokens: z
    .number()
    .int()
    .min(1)
    .max(1 << 20),
  maxSeqs: z
    .number()
    .int()
    .min(1)
    .max(1 << 16),
  slidingWindow: z.number().int().min(1).nullable(),
  /** Per layer, whether the window applies there (Gemma); absent: on every layer. */
  slidingLayers: z.array(z.boolean()).max(1024).optional(),
  /** Attention's softmax scale; absent: 1/√headDim. */
  scale: z.number().positive().finite().optional(),
  /** Attention score soft-cap (Gemma 2); absent: none. */
  softcap: z.number().positive().finite().optional(),
  /** Attention sinks (gpt-oss): [numLayers, numHeads] logits for this worker's heads; absent: none. */
  sinks: z
    .array(z.number().finite())
    .max(1 << 20)
    .optional(),
  /** KV budget the model side asks for; the worker may grant less (its --kv-memory). */
  kvMemory: z.number().int().min(1).nullable(),
  /** Most micro-batches in flight at once. */
  maxTags: z.number().int().min(1).max(64),
  /**
   * The native data plane: a segment to map (same-host connections), or a TCP data-plane socket
   * for the worker to open (TCP connections); null for the exchange over messages.
   */
  dataPlane: z
    .union([
      z.strictObject({
        segment: z.string().regex(/^\/lamina-[\w-]+$/),
        layout: z.number().int(),
        /** Model workers map the segment too: the worker leaves its name for them. */
        shared: z.boolean().optional(),
      }),
      z.strictObject({ tcp: z.literal(true), layout: z.number().int() }),
    ])
    .nullable(),
});
export type ConfigureRequest = z.infer<typeof configureRequestSchema>;

export const configureReplySchema = z.strictObject({
  version: z.literal(ATTENTION_PROTOCOL_VERSION),
  numBlocks: z.number().int().min(1),
  /**
   * Blocks of the window layers' own pool (window-blocks.ts), 0 when every layer shares the
   * global pool: the model side mirrors it to fill the data plane's window-pool tables.
   */
  windowBlocks: z.number().int().min(0),
  pid: z.number().int(),
  kernels: z.string(),
  /** Whether the worker serves the per-layer exchange over the requested data plane. */
  dataPlane: z.boolean(),
  /** Why it does not, when it was asked to ("" otherwise). */
  dataPlaneNote: z.string(),
  /** TCP data plane: the port the worker listens on for this connection and the token to prove. */
  dataPlaneTcp: z
    .strictObject({
      port: z.number().int().min(1).max(65535),
      token: z.string().regex(/^[0-9a-f]{32}$/),
    })
    .nullable(),
});
export type ConfigureReply = z.infer<typeof configureReplySchema>;

export const workerStatsSchema = z.strictObject({
  usedBlocks: z.number().int().min(0),
  totalBlocks: z.number().int().min(0),
  sequences: z.number().int().min(0),
  /** Blocks holding a cached prefix (prefix caching), in use or kept for reuse. */
  cachedBlocks: z.number().int().min(0),
  /** The same two counts of the window layers' own pool (0 where there is none). */
  windowUsedBlocks: z.number().int().min(0),
  windowCachedBlocks: z.number().int().min(0),
});
export type WorkerStats = z.infer<typeof workerStatsSchema>;
