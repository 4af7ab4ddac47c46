// The attention worker's TCP data-plane bridge under libFuzzer: hostile frames from two peers (a
// front end and a model worker) through socket pairs (test/helpers/libfuzzer.ts runs the target).
import { describe } from "node:test";
import { fuzzTarget } from "../helpers/libfuzzer.js";

/**
 * A well-formed exchange for the TCP target to start from (its geometry: 2 micro-batches, 8 tokens,
 * 4 sequences, 4 blocks each, q 16 and k/v 8 floats a token, 2 layers): the front end's STEP, then a
 * model worker's q and k/v of both layers, each KV asking for its OUT. Input layout: the front end's
 * stream length (u16), its stream, the model worker's.
 */
function tcpSeed(): Buffer {
  const frame = (kind: number, layer: number, nSeqs: number, payload: Int32Array | Float32Array) => {
    const head = Buffer.alloc(28);
    for (const [i, v] of [0x4650444c, kind, 0, layer, 1, nSeqs, payload.byteLength].entries())
      head.writeInt32LE(v, 4 * i);
    return Buffer.concat([head, Buffer.from(payload.buffer)]);
  };
  const step = frame(1, 0, 1, Int32Array.from([0, 1, 0, 0, -1, -1, -1]));
  const layers = [0, 1].flatMap((l) => [
    frame(2, l, 0, new Float32Array(16).fill(0.5)),
    frame(3, l, 1, new Float32Array(16).fill(0.25)),
  ]);
  const split = Buffer.alloc(2);
  split.writeUInt16LE(step.length);
  return Buffer.concat([split, step, ...layers]);
}

describe("native data plane under libFuzzer: the TCP bridge", () => {
  fuzzTarget("dataplane_tcp", "frames from a front end and a model worker into the TCP bridge", tcpSeed());
});
