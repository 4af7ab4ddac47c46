import {
  type Partition,
  RemoteAttentionService,
  type WorkerEndpoint,
} from "../../src/attention/remote-service.js";
import { AttentionWorkerSession } from "../../src/attention/worker-session.js";
import type { KernelBackend, KvDType } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import type { Channel } from "../../src/transport/channel.js";
import { createShmChannelPair } from "../../src/transport/shm-channel.js";
import { connectTcp, listenTcp, type TcpServer } from "../../src/transport/tcp.js";

/**
 * An attention worker served inside the test process over a real transport (a shared-memory
 * channel pair or TCP loopback): the same session code a worker process runs, minus the fork.
 */
export class InProcessWorker implements WorkerEndpoint {
  sessions: AttentionWorkerSession[] = [];
  private server: TcpServer | null = null;
  private readonly secret = "test-secret-0123456789";

  constructor(
    readonly name: string,
    private readonly backend: KernelBackend,
    private readonly transport: "shm" | "tcp",
    private readonly kvMemory = 64 << 20,
  ) {}

  async connect(): Promise<Channel> {
    const log = () => {};
    if (this.transport === "shm") {
      const [engineSide, workerSide] = createShmChannelPair();
      this.sessions.push(
        new AttentionWorkerSession(workerSide, this.backend, {
          kvMemory: this.kvMemory,
          log,
          freeWindowBlocks: true,
        }),
      );
      return engineSide;
    }
    if (!this.server) {
      this.server = await listenTcp({ host: "127.0.0.1", port: 0, secret: this.secret, log }, (ch) => {
        this.sessions.push(
          new AttentionWorkerSession(ch, this.backend, {
            kvMemory: this.kvMemory,
            log,
            freeWindowBlocks: true,
          }),
        );
      });
    }
    return connectTcp({ host: "127.0.0.1", port: this.server.port, secret: this.secret, log });
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}

export async function remoteAttention(
  model: LoadedModel,
  backend: KernelBackend,
  o: {
    workers: number;
    partition: Partition;
    transport: "shm" | "tcp";
    depth: number;
    blockSize?: number;
    kvBlocks?: number;
    /**
     * The engine's step size and running sequences (the step is at least one token a sequence),
     * which bound how far back a window layer's keys are still read.
     */
    maxTokensPerStep?: number;
    maxRunning?: number;
    kvDtype?: KvDType;
    /** false: the exchange over transport messages, not the native data plane. */
    dataPlane?: boolean;
  },
): Promise<{ service: RemoteAttentionService; workers: InProcessWorker[] }> {
  const workers = Array.from(
    { length: o.workers },
    (_, i) => new InProcessWorker(`w${i}`, backend, o.transport),
  );
  const sizes = resolveSizes(model, {
    blockSize: o.blockSize ?? 16,
    ...(o.maxTokensPerStep !== undefined ? { maxTokensPerStep: o.maxTokensPerStep } : {}),
    ...(o.maxRunning !== undefined ? { maxRunning: o.maxRunning } : {}),
    ...(o.kvDtype !== undefined ? { kvDtype: o.kvDtype } : {}),
  });
  const service = await RemoteAttentionService.connect(workers, {
    partition: o.partition,
    geometry: sizes.geometry,
    kvMemory: null,
    microBatches: Math.max(1, o.depth),
    ...(o.dataPlane !== undefined ? { dataPlane: o.dataPlane } : {}),
  });
  return { service, workers };
}
