import { type DataPlaneAddon, dataPlaneAddon } from "../attention/data-plane-native.js";
import { type SlicedModel, sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { KernelBackend } from "../kernels/backend.js";
import { loadKernelBackend } from "../kernels/index.js";
import { modelFingerprint } from "../model/fingerprint.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import { newSegmentName } from "../transport/shm-names.js";
import { type ShmNative, shmNative } from "../transport/shm-native.js";
import { listenTcp } from "../transport/tcp.js";
import { hostId } from "../util/host-id.js";
import { SliceExecutor } from "./executor.js";
import { ModelPlane, modelPlaneBytes, RW } from "./model-plane.js";
import { channelLink, type FrontEndLink, ipcLink } from "./model-worker-links.js";
import {
  type FromModelWorker,
  MODEL_WORKER_PROTOCOL_VERSION,
  type ModelWorkerConfigure,
  parseMessage,
  toWorkerSchema,
} from "./model-worker-protocol.js";
import type { PlaneAttention } from "./plane-attention.js";
import { PlaneNet } from "./plane-net.js";
import { ReplicaPlaneSync } from "./plane-sync.js";
import { ReplicaLoop } from "./replica-loop.js";
import { ReplicaSession, type StartedReplica } from "./replica-session.js";

export interface ModelWorkerOptions {
  /** The model, as `--model` names it (the front end passes its own). */
  readonly model?: string;
  readonly threads?: number;
  /** False: quantized weights as stored only, no packed copy (`--no-weight-packing`). */
  readonly weightPacking?: boolean;
  /** Serve front ends that connect over TCP (one at a time) instead of the parent over IPC. */
  readonly listen?: { readonly host: string; readonly port: number };
  /** The shared secret connecting front ends must prove (with `listen`). */
  readonly token?: string;
  /** A model plane over TCP: the port its frames come to (default 0: any free one, named to the front end). */
  readonly planePort?: number;
  readonly log?: (line: string) => void;
}

/**
 * A model worker process: loads the weights and kernels once, then serves a front end: maps its
 * model plane and the attention workers' data-plane segments, and runs the slices the rotation
 * gives its replica (replica-loop.ts). It holds weights and nothing per request, so a lost one is
 * replaced by a fresh process, or, when it listens, by the next connection to it.
 *
 * Spawned by `serve --model-workers N`, it talks to its parent over Node IPC and exits with it.
 * Started with `--listen`, it serves authenticated front ends over TCP, one at a time, and keeps
 * its weights loaded between them (a front end restarts without reloading them). The plane is
 * shared memory with a front end on the same host, or a copy of its own, linked over TCP, for one
 * on another (plane-sync.ts).
 */
export async function runModelWorker(
  o: ModelWorkerOptions,
): Promise<{ port: number | null; close(): Promise<void> }> {
  const log = o.log ?? ((line: string) => process.stderr.write(`model-worker[${process.pid}]: ${line}\n`));
  if (!o.listen && !process.send)
    throw new Error(
      "model-worker needs --listen HOST:PORT (with --token), or to be started by `lamina serve --model-workers N`",
    );
  if (o.listen && !o.token)
    throw new Error("model-worker --listen needs a shared secret: --token SECRET or LAMINA_ATTENTION_TOKEN");
  const dp = dataPlaneAddon();
  if (typeof dp === "string") throw new Error(`model workers need the native data plane: ${dp}`);
  const backend = loadKernelBackend({
    backend: "native",
    ...(o.threads ? { threads: o.threads } : {}),
    ...(o.weightPacking === false ? { weightPacking: false } : {}),
  });
  const model = await loadModel(o.model);
  // A plane over TCP listens where the control channel does (spawned workers: loopback).
  const host = new ModelWorkerHost(
    model,
    backend,
    dp,
    shmNative(),
    { host: o.listen?.host ?? "127.0.0.1", port: o.planePort ?? 0 },
    log,
  );

  if (!o.listen) {
    const link = ipcLink();
    await host.serve(link, (why) => {
      log(why);
      process.exit(1);
    });
    process.exit(0);
  }
  // The session being served; a front end that connects while the last one is closing waits for it.
  let current: { link: FrontEndLink; finished: Promise<void> } | null = null;
  const server = await listenTcp(
    { host: o.listen.host, port: o.listen.port, secret: o.token!, log },
    (channel) => {
      const link = channelLink(channel);
      const previous = current;
      if (previous && !previous.link.closed) {
        link.send({
          v: MODEL_WORKER_PROTOCOL_VERSION,
          type: "error",
          message: `busy: serving the front end at ${previous.link.description}`,
        });
        setTimeout(() => link.close(), 100);
        return;
      }
      const session = { link, finished: Promise.resolve() };
      current = session;
      session.finished = (previous?.finished ?? Promise.resolve()).then(() => {
        log(`front end connected: ${link.description}`);
        return host
          .serve(link, (why) => {
            log(why);
            link.close();
          })
          .then(() => log(`front end ${link.description} gone; waiting for the next`));
      });
    },
  );
  log(`listening on ${server.host}:${server.port} with ${backend.describe()}`);
  return { port: server.port, close: () => server.close() };
}

/** The model and kernels, loaded once, and the session with the front end being served. */
class ModelWorkerHost {
  private readonly sliced: SlicedModel;
  private readonly fingerprint: string;

  constructor(
    private readonly model: LoadedModel,
    private readonly backend: KernelBackend,
    private readonly dp: DataPlaneAddon,
    private readonly shm: ShmNative,
    /** Where a copy of a plane over TCP listens for frames. */
    private readonly planeAt: { readonly host: string; readonly port: number },
    private readonly log: (line: string) => void,
  ) {
    this.sliced = sliceModel(buildLlamaGraph(model.config));
    this.fingerprint = modelFingerprint(model.config);
  }

  /**
   * Serves one front end until it closes the link or says stop; resolves once the replica loop
   * has ended and its mappings are released. `onLoopFailure` is told when the loop fails.
   */
  serve(link: FrontEndLink, onLoopFailure: (why: string) => void): Promise<void> {
    const reply = (m: FromModelWorker) => link.send(m);
    const session = new ReplicaSession(
      this.dp,
      (c, attention) => this.startLoop(c, attention),
      onLoopFailure,
      (line) => this.log(`${line}; ${this.backend.describe()}`),
    );
    link.onMessage((m: unknown) => {
      if (session.ended) return;
      const parsed = parseMessage(toWorkerSchema, m);
      if (!parsed.ok) {
        reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "error", message: `bad message: ${parsed.why}` });
        return;
      }
      const msg = parsed.value;
      if (msg.type === "stop") {
        void session.end();
        return;
      }
      try {
        let port: number | undefined;
        if (msg.type === "peers") session.peers(msg);
        else port = session.configure(msg);
        reply({
          v: MODEL_WORKER_PROTOCOL_VERSION,
          type: "configured",
          epoch: msg.epoch,
          ...(port ? { planePort: port } : {}),
        });
      } catch (e) {
        reply({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "error", message: (e as Error).message });
      }
    });
    // The session ends once, on STOP or when the front end is gone.
    link.onClose(() => void session.end());
    reply({
      v: MODEL_WORKER_PROTOCOL_VERSION,
      type: "hello",
      pid: process.pid,
      kernels: this.backend.describe(),
      model: this.fingerprint,
      host: hostId(),
    });
    return session.finished;
  }

  private startLoop(c: ModelWorkerConfigure, attention: PlaneAttention): StartedReplica {
    let buffer: ArrayBuffer;
    const shared = typeof c.plane === "string" ? c.plane : null;
    if (shared) {
      try {
        buffer = this.shm.open(shared);
      } catch (e) {
        throw new Error(
          `cannot map the model plane ${shared} (${(e as Error).message}): over shared memory a model worker runs on its front end's host (a front end on another host takes --model-plane tcp)`,
        );
      }
    } else {
      // This replica's own copy: mapped for its futex doorbells, the name gone at once.
      const name = newSegmentName();
      buffer = this.shm.create(name, modelPlaneBytes(c.shape));
      this.shm.unlink(name);
    }
    const plane = new ModelPlane(buffer, c.shape);
    if (shared) plane.check();
    else {
      plane.initialise();
      Atomics.store(plane.replicaWords(c.replica), RW.lease, c.lease);
    }
    const executor = new SliceExecutor(this.sliced, this.model.weights, this.backend, this.model.config, {
      maxTokens: c.shape.maxTokens,
      maxLogitRows: c.shape.maxSeqs,
      microBatches: c.shape.microBatches,
    });
    const mine = executor.bufferShapes;
    if (mine.length !== c.shape.buffers.length || mine.some((b, i) => b.width !== c.shape.buffers[i]!.width))
      throw new Error("the front end's buffer plan differs from this worker's (another model or build?)");
    let sync: ReplicaPlaneSync | null = null;
    let port = 0;
    if (typeof c.plane !== "string") {
      const net = PlaneNet.open(buffer, c.plane.tcp.token, 1 + c.replica, c.timeoutMs);
      try {
        port = net.listen(this.planeAt.host, this.planeAt.port);
        sync = new ReplicaPlaneSync(plane, net, c.replica, this.sliced, (j, t) => executor.tensorOf(j, t));
      } catch (e) {
        net.close();
        throw e;
      }
    }
    try {
      const loop = new ReplicaLoop(
        executor,
        plane,
        attention,
        c.replica,
        c.lease,
        { vocabSize: this.model.config.vocabSize, maxContext: c.maxContext, spinUs: c.spinUs },
        this.shm,
        sync,
      );
      return { loop, sync, port, address: `${this.planeAt.host}:${port}` };
    } catch (e) {
      sync?.close();
      throw e;
    }
  }
}
