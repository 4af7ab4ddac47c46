import { z } from "zod";
import { MAX_REPLICAS, MAX_TARGETS } from "./model-plane.js";

/**
 * The control messages between a front end and a model worker: over Node IPC to one it spawned,
 * or as the control payload of MODEL_WORKER_MESSAGE frames on an authenticated TCP channel to one
 * started with `--listen`. Only control travels here: a step's inputs, activations and logits live
 * in the model plane (shared memory, or each process's copy linked over TCP: plane-sync.ts), and
 * the per-layer exchange goes straight to the attention workers' data plane.
 *
 *   worker → front end   hello {pid, kernels, model}      once the model and kernels are loaded
 *                                                          (on connect, for a listening worker)
 *   front end → worker   configure {plane, shape, replica, lease, targets, …}   (again after a relayout)
 *   worker → front end   configured {epoch, planePort?} | error {message}
 *   front end → worker   peers {epoch, peers}     (a plane over TCP: where the other replicas' copies listen)
 *   worker → front end   configured {epoch} | error {message}
 *   front end → worker   stop
 *
 * Version 2 added the model's fingerprint to hello and the replica's lease to configure; version 3
 * attention workers reached over TCP (a target's `tcp` address and token instead of a segment);
 * version 4 the model plane over TCP (`plane: {tcp: {token}}`, the copy's port in configured, and
 * peers), for model workers on other hosts.
 */
export const MODEL_WORKER_PROTOCOL_VERSION = 4;
/** The frame type that carries these messages over TCP (the payload is the message as JSON). */
export const MODEL_WORKER_MESSAGE = 0x40;

const version = z.literal(MODEL_WORKER_PROTOCOL_VERSION);
const count = (max: number) => z.number().int().min(1).max(max);

const dataPlaneShapeSchema = z.strictObject({
  numTags: count(64),
  maxTokens: count(1 << 20),
  maxSeqs: count(1 << 16),
  maxBlocksPerSeq: count(1 << 20),
  qWidth: count(1 << 20),
  kvWidth: count(1 << 20),
  numLayers: count(1024),
});

/** What every attention worker target carries beside where to reach it. */
const targetFields = {
  shape: dataPlaneShapeSchema,
  outColOff: z.number().int().min(0),
  kvColOff: z.number().int().min(0),
};

export const configureSchema = z.strictObject({
  v: version,
  type: z.literal("configure"),
  /** Layout generation of the attention workers these targets belong to. */
  epoch: z.number().int().min(0),
  /** The shared segment's name, or a plane over TCP: the replica keeps a copy and listens for frames. */
  plane: z.union([
    z.string().regex(/^\/lamina-[\w-]+$/),
    z.strictObject({ tcp: z.strictObject({ token: z.string().length(32) }) }),
  ]),
  shape: z.strictObject({
    microBatches: count(32),
    replicas: count(MAX_REPLICAS),
    targets: count(MAX_TARGETS),
    maxTokens: count(1 << 20),
    maxSeqs: count(1 << 16),
    buffers: z.array(z.strictObject({ rows: z.enum(["tokens", "logits"]), width: count(1 << 24) })).max(4096),
  }),
  replica: z
    .number()
    .int()
    .min(0)
    .max(MAX_REPLICAS - 1),
  /**
   * The replica's lease in the plane: the loop runs slices only while its replica line holds it,
   * so a replica the front end gave up on (a stalled process it could not kill) never touches the
   * plane again once the front end moved the lease on.
   */
  lease: z.number().int().min(1).max(0x7fffffff),
  targets: z
    .array(
      z.union([
        z.strictObject({ segment: z.string().regex(/^\/lamina-[\w-]+$/), ...targetFields }),
        z.strictObject({
          tcp: z.strictObject({
            host: z.string().min(1).max(255),
            port: z.number().int().min(1).max(65535),
            token: z.string().length(32),
          }),
          ...targetFields,
        }),
      ]),
    )
    .min(1)
    .max(MAX_TARGETS),
  qWidth: count(1 << 20),
  kvWidth: count(1 << 20),
  maxContext: count(1 << 24),
  spinUs: z.number().int().min(0).max(1_000_000),
  timeoutMs: count(3_600_000),
});
export type ModelWorkerConfigure = z.infer<typeof configureSchema>;

const peerAddress = z.strictObject({
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
});

export const peersSchema = z.strictObject({
  v: version,
  type: z.literal("peers"),
  epoch: z.number().int().min(0),
  /** Per replica, where its copy of the plane listens (null: not reachable now, e.g. being replaced). */
  peers: z.array(peerAddress.nullable()).min(1).max(MAX_REPLICAS),
});
export type ModelWorkerPeers = z.infer<typeof peersSchema>;

export const toWorkerSchema = z.discriminatedUnion("type", [
  configureSchema,
  peersSchema,
  z.strictObject({ v: version, type: z.literal("stop") }),
]);
export type ToModelWorker = z.infer<typeof toWorkerSchema>;

export const fromWorkerSchema = z.discriminatedUnion("type", [
  z.strictObject({
    v: version,
    type: z.literal("hello"),
    pid: z.number().int(),
    kernels: z.string(),
    /** `modelFingerprint` of the worker's model: the front end refuses a worker of another model. */
    model: z.string().regex(/^[0-9a-f]{16}$/),
    /** The worker's machine (util/host-id.ts): a front end with the same one may check its pid. */
    host: z.string().max(128).optional(),
  }),
  z.strictObject({
    v: version,
    type: z.literal("configured"),
    epoch: z.number().int(),
    /** A plane over TCP: the port this replica's copy listens on (at the host the front end reached it by). */
    planePort: z.number().int().min(1).max(65535).optional(),
  }),
  z.strictObject({ v: version, type: z.literal("error"), message: z.string() }),
]);
export type FromModelWorker = z.infer<typeof fromWorkerSchema>;

/** A message as zod sees it, or a one-line reason it is not one. */
export function parseMessage<T>(
  schema: z.ZodType<T>,
  m: unknown,
): { ok: true; value: T } | { ok: false; why: string } {
  const r = schema.safeParse(m);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  return { ok: false, why: `${issue?.path.join(".") || "message"}: ${issue?.message ?? "invalid"}` };
}
