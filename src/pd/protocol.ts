/**
 * Messages between a decode instance and a prefill instance, beside the attention-worker protocol
 * (src/attention/protocol.ts) on the same connection: the prefill instance's attention executor
 * speaks that protocol unchanged, and these types carry prefill work.
 *
 *   PREFILL (rpc)  ints [nSeqs, nTokens]; tensors seqIds, seqStart (nSeqs+1), positions, tokens,
 *                  flags (per sequence: KEEP = its KV stays here, offloaded; LOGITS = it samples)
 *                  → reply tensor logits [nSampling, vocab] (f32), in sequence order
 *   KV_LAYER       ints [layer, nRows]; tensors seqIds, positions (per row), k, v (f32): the KV
 *                  one prefill layer produced for sequences that are not kept, sent as soon as the
 *                  layer is done (before the PREFILL reply) so the decode instance imports it.
 *
 * The decode instance reserves the blocks (RESERVE on the attention protocol) before PREFILL, so
 * its mirror of the executor's block accounting stays exact; it also releases them.
 */
export const PdMsgType = {
  PREFILL: 0x40,
  KV_LAYER: 0x41,
} as const;

/** Message types at or above this belong to the PD protocol; the rest to the attention protocol. */
export const PD_FIRST_TYPE = 0x40;
export const PD_LAST_TYPE = 0x4f;

export const PrefillFlag = {
  KEEP: 1,
  LOGITS: 2,
} as const;

export function isPdType(type: number): boolean {
  return type >= PD_FIRST_TYPE && type <= PD_LAST_TYPE;
}
