import { dataPlaneAddon } from "../attention/data-plane-native.js";
import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import { shmNative } from "../transport/shm-native.js";
import { SliceExecutor } from "./executor.js";
import { ModelPlane } from "./model-plane.js";
import {
  type FromModelWorker,
  MODEL_WORKER_PROTOCOL_VERSION,
  type ModelWorkerConfigure,
  parseMessage,
  toWorkerSchema,
} from "./model-worker-protocol.js";
import { PlaneAttention } from "./plane-attention.js";
import { ReplicaLoop } from "./replica-loop.js";

export interface ModelWorkerOptions {
  /** The model, as `--model` names it (the front end passes its own). */
  readonly model?: string;
  readonly threads?: number;
  readonly log?: (line: string) => void;
}

/**
 * A model worker process: loads the weights and kernels, maps the front end's model plane and
 * the attention workers' data-plane segments, and runs the slices the rotation gives its replica
 * (replica-loop.ts). It holds weights and nothing per request, so a lost one is replaced by a
 * fresh process. Spawned by the front end, it talks to it over Node IPC (model-worker-protocol.ts)
 * and exits with it.
 */
export async function runModelWorker(o: ModelWorkerOptions): Promise<void> {
  const send = process.send?.bind(process);
  if (!send)
    throw new Error(
      "model-worker is started by `lamina serve --model-workers N`, which talks to it over IPC; it cannot run on its own yet",
    );
  const log = o.log ?? ((line: string) => process.stderr.write(`model-worker[${process.pid}]: ${line}\n`));
  const reply = (m: FromModelWorker) => send(m, undefined, {}, () => {});
  const dp = dataPlaneAddon();
  if (typeof dp === "string") throw new Error(`model workers need the native data plane: ${dp}`);
  const backend = loadKernelBackend({ backend: "native", ...(o.threads ? { threads: o.threads } : {}) });
  const model = await loadModel(o.model);
  const sliced = sliceModel(buildLlamaGraph(model.config));
  const shm = shmNative();
  let loop: ReplicaLoop | null = null;

  const configure = (c: ModelWorkerConfigure) => {
    const attention = new PlaneAttention(dp, c.targets, c.qWidth, c.kvWidth, c.spinUs, c.timeoutMs);
    if (loop) {
      loop.replaceAttention(attention);
      return;
    }
    const plane = new ModelPlane(shm.open(c.plane), c.shape);
    plane.check();
    const executor = new SliceExecutor(sliced, model.weights, backend, model.config, {
      maxTokens: c.shape.maxTokens,
      maxLogitRows: c.shape.maxSeqs,
      microBatches: c.shape.microBatches,
    });
    const mine = executor.bufferShapes;
    if (mine.length !== c.shape.buffers.length || mine.some((b, i) => b.width !== c.shape.buffers[i]!.width))
      throw new Error("the front end's buffer plan differs from this worker's (another model or build?)");
    loop = new ReplicaLoop(
      executor,
      plane,
      attention,
      c.replica,
      { vocabSize: model.config.vocabSize, maxContext: c.maxContext, spinUs: c.spinUs },
      shm,
    );
    void loop.run().catch((e: Error) => {
      log(`replica loop failed: ${e.message}`);
      process.exit(1);
    });
    log(`replica ${c.replica} of ${c.shape.replicas}: ${backend.describe()}`);
  };

  process.on("message", (m: unknown) => {
    const parsed = parseMessage(toWorkerSchema, m);
    if (!parsed.ok) {
      reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "error", message: `bad message: ${parsed.why}` });
      return;
    }
    const msg = parsed.value;
    if (msg.type === "stop") {
      loop?.stop();
      process.exit(0);
    }
    try {
      configure(msg);
      reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "configured", epoch: msg.epoch });
    } catch (e) {
      reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "error", message: (e as Error).message });
    }
  });
  // Never outlive the front end.
  process.once("disconnect", () => process.exit(0));
  reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "hello", pid: process.pid, kernels: backend.describe() });
}
