import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { median } from "../../src/bench/stats.js";
import { handOffLayer, KvHandoff, type PrefillJob } from "../../src/pd/prefill-server.js";
import { createShmChannel } from "../../src/transport/index.js";

/** What the prefill instance's thread pays per prefill layer besides the layer's own compute. */
export interface KvHandoffCost {
  /** A layer's yield to the event loop, with no KV to hand back (s). */
  readonly layerS: number;
  /** Bytes of K and V rows (as sent: f32) gathered and written to the channel per second. */
  readonly bytesPerS: number;
  /** Rows per layer of the timed pass, and its seconds per layer. */
  readonly rows: number;
  readonly rowsLayerS: number;
}

/**
 * Times the prefill instance's per-layer handoff (pd/prefill-server.ts handOffLayer: gather the
 * kept rows' K and V, write the KV_LAYER message into the shared-memory channel, yield) on the
 * runtime's own code, over a channel of the spawned instance's default capacity with a reader on
 * another thread. The ring is written round once first, so its pages are mapped as in a running
 * server. `width` is K's (and V's) floats per token, `rows` the tokens of a prompt chunk.
 */
export async function measureKvHandoff(
  width: number,
  layers: number,
  rows: number,
  reps: number,
): Promise<KvHandoffCost> {
  const channel = createShmChannel();
  const worker = new Worker(new URL("./drain-worker.js", import.meta.url), {
    workerData: { name: channel.name },
  });
  await once(worker, "message");
  try {
    await channel.waitForPeer();
    const handoff = new KvHandoff(channel, width, rows);
    const k = new Float32Array(rows * width).fill(0.5);
    const v = new Float32Array(rows * width).fill(0.25);
    const pass = async (n: number): Promise<number> => {
      handoff.start(job(n));
      const t0 = performance.now();
      for (let l = 0; l < layers; l++) await handOffLayer(handoff, l, k, v);
      return (performance.now() - t0) / 1000 / layers;
    };
    const ringBytes = 64 << 20;
    const passBytes = 2 * 4 * rows * width * layers;
    for (let i = 0; i <= Math.ceil(ringBytes / passBytes); i++) await pass(rows);
    const idle: number[] = [];
    const full: number[] = [];
    for (let i = 0; i < reps; i++) {
      idle.push(await pass(0));
      full.push(await pass(rows));
    }
    const layerS = median(idle);
    const rowsLayerS = median(full);
    return {
      layerS,
      bytesPerS: (2 * 4 * rows * width) / Math.max(1e-9, rowsLayerS - layerS),
      rows,
      rowsLayerS,
    };
  } finally {
    worker.postMessage("close");
    await once(worker, "message");
    await channel.close();
    await worker.terminate();
  }
}

/** A prefill job of `n` tokens of one sequence whose KV goes back (not kept), for the handoff. */
function job(n: number): PrefillJob {
  const seqStart = Int32Array.of(0, n);
  return {
    requestId: 0,
    nSeqs: 1,
    nTokens: n,
    seqIds: Int32Array.of(1),
    seqStart,
    positions: Int32Array.from({ length: n }, (_, i) => i),
    tokens: new Int32Array(n),
    flags: Int32Array.of(0),
  };
}
