// A frame that carries a micro-batch's new step to a model worker's copy (over TCP) lands word by
// word while the worker's loop may be reading the same words. Whatever point of the frame each of
// the loop's reads falls at, the loop must either run nothing or run the new step's slice under the
// new step's number: a slice run under the old number sends frames every other copy drops as stale,
// and the micro-batch stalls until the front end declares the worker lost. This checks every such
// interleaving against the frames the front end and a replica really build (FrontPlaneSync,
// ReplicaPlaneSync) and the loop's own reading rule (due-slice.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { sliceModel } from "../../src/graph/converter.js";
import { buildLlamaGraph } from "../../src/graph/llama-graph.js";
import { loadModel } from "../../src/model/load.js";
import { DUE_READS, dueSlice } from "../../src/runtime/due-slice.js";
import { B, ModelPlane, type ModelPlaneShape, modelPlaneBytes } from "../../src/runtime/model-plane.js";
import type { PlaneFrame, PlaneNet } from "../../src/runtime/plane-net.js";
import { FrontPlaneSync, ReplicaPlaneSync } from "../../src/runtime/plane-sync.js";
import { replicaOf } from "../../src/util/rotation.js";
import { storiesDir } from "../helpers/model-workers.js";

const model = await loadModel(storiesDir, { weights: false });
const sliced = sliceModel(buildLlamaGraph(model.config));
const SLICES = sliced.slices.length;

function plane(replicas: number): ModelPlane {
  const shape: ModelPlaneShape = {
    microBatches: 2,
    replicas,
    targets: 1,
    maxTokens: 4,
    maxSeqs: 2,
    buffers: [],
  };
  const p = new ModelPlane(new ArrayBuffer(modelPlaneBytes(shape)), shape);
  p.initialise();
  return p;
}

/** A stand-in for the links: keeps the stores of every frame sent, by peer. */
function capture(): { net: PlaneNet; sent: { peer: number; stores: [number, number][] }[] } {
  const sent: { peer: number; stores: [number, number][] }[] = [];
  const net = {
    send(peer: number, f: PlaneFrame) {
      const stores: [number, number][] = [];
      for (let i = 0; i < f.nStores; i++) stores.push([f.stores[2 * i]!, f.stores[2 * i + 1]!]);
      sent.push({ peer, stores });
    },
    onLoss() {},
  };
  return { net: net as unknown as PlaneNet, sent };
}

interface Words {
  stepSeq: number;
  sliceDone: number;
  logitsSeq: number;
  failedSeq: number;
}

/**
 * Every way the loop's reads (DUE_READS, in order) can fall among the frame's stores: read i sees
 * the first p_i stores applied, p_0 <= p_1 <= ... For each, what the loop decides. Fails on a slice
 * run under a step number other than the one it belongs to.
 */
function checkInterleavings(
  what: string,
  p: ModelPlane,
  j: number,
  before: Words,
  stores: [number, number][],
  replica: number,
): number {
  const b = p.batches[j]!;
  const wordOf = (byteOffset: number) => (byteOffset - b.offset) / 4;
  const stateAfter = (n: number): Int32Array => {
    const w = new Int32Array(64);
    w[B.stepSeq] = before.stepSeq;
    w[B.sliceDone] = before.sliceDone;
    w[B.logitsSeq] = before.logitsSeq;
    w[B.failedSeq] = before.failedSeq;
    for (const [off, val] of stores.slice(0, n)) {
      const i = wordOf(off);
      if (i >= 0 && i < 64) w[i] = val;
    }
    return w;
  };
  const states = Array.from({ length: stores.length + 1 }, (_, n) => stateAfter(n));
  const final = states[stores.length]!;
  let runs = 0;
  const walk = (read: number, from: number, seen: number[]) => {
    if (read === DUE_READS.length) {
      const k = dueSlice(seen, j, p.shape.replicas, replica);
      if (k < 0) return;
      runs++;
      // Run: the slice and the step it is run under must both be the frame's.
      assert.equal(seen[0], final[B.stepSeq], `${what}: slice ${k} run under step ${seen[0]}`);
      assert.equal(k, final[B.sliceDone], `${what}: slice ${k} of step ${seen[0]}`);
      return;
    }
    for (let n = from; n <= stores.length; n++) walk(read + 1, n, [...seen, states[n]![DUE_READS[read]!]!]);
  };
  walk(0, 0, []);
  return runs;
}

test("a launch landing while a model worker looks: the new slice 0 never runs under the old step", () => {
  for (const replicas of [1, 2, 3])
    for (const j of [0, 1]) {
      const p = plane(replicas);
      const { net, sent } = capture();
      const front = new FrontPlaneSync(p, net);
      const s = 7;
      const w = p.batches[j]!.words;
      // The front end's copy: step s ended with its logits.
      w[B.stepSeq] = s + 1;
      w[B.logitsSeq] = s;
      w[B.failedSeq] = 3;
      front.launched(j, s + 1);
      const x = replicaOf(j, 0, replicas);
      assert.equal(sent[0]!.peer, 1 + x, "the launch goes to slice 0's replica");
      // Slice 0's replica's copy as step s left it: it ran slices of step s but (with more than one
      // replica) not the last, so its logitsSeq is an older step's; or, alone, it ran them all.
      const last = replicaOf(j, SLICES - 1, replicas) === x;
      const mine = Array.from({ length: SLICES }, (_, k) => k).filter((k) => replicaOf(j, k, replicas) === x);
      const before = { stepSeq: s, sliceDone: mine.at(-1)! + 1, logitsSeq: last ? s : s - 1, failedSeq: 3 };
      const runs = checkInterleavings(
        `launch, ${replicas} replicas, j ${j}`,
        p,
        j,
        before,
        sent[0]!.stores,
        x,
      );
      assert.ok(runs > 0, "once the frame has landed the slice runs");
    }
});

test("a slice handed on landing while the next model worker looks: never run under the old step", () => {
  for (const replicas of [2, 3])
    for (const j of [0, 1])
      for (const ended of ["logits", "failed"] as const) {
        const p = plane(replicas);
        const { net, sent } = capture();
        const x = replicaOf(j, 0, replicas);
        const y = replicaOf(j, 1, replicas);
        const sync = new ReplicaPlaneSync(p, net, x, sliced, () => new Float32Array(1 << 16));
        const s = 11;
        const w = p.batches[j]!.words;
        // Slice 0's replica holds the launch of step s + 1, which told it how step s ended, and ran slice 0.
        w[B.stepSeq] = s + 1;
        w[B.logitsSeq] = ended === "logits" ? s : s - 1;
        w[B.failedSeq] = ended === "failed" ? s : 0;
        w[B.sliceDone] = 1;
        sync.sliceDone(j, 0, s + 1);
        const frame = sent.find((f) => f.peer === 1 + y);
        assert.ok(frame, "slice 1's replica gets the step");
        // Slice 1's replica as step s left it: after its own last slice (the next slice another
        // replica's; its logitsSeq s only if that was the step's last), or, if step s failed, stopped
        // at a slice of its own.
        const mine = Array.from({ length: SLICES }, (_, k) => k).filter(
          (k) => replicaOf(j, k, replicas) === y,
        );
        const ranLast = replicaOf(j, SLICES - 1, replicas) === y;
        const before: Words =
          ended === "logits"
            ? { stepSeq: s, sliceDone: mine.at(-1)! + 1, logitsSeq: ranLast ? s : s - 1, failedSeq: 0 }
            : { stepSeq: s, sliceDone: mine.at(-1)!, logitsSeq: s - 1, failedSeq: s };
        const what = `step s ${ended}, ${replicas} replicas, j ${j}`;
        const runs = checkInterleavings(what, p, j, before, frame.stores, y);
        assert.ok(runs > 0, "once the frame has landed the slice runs");
      }
});
