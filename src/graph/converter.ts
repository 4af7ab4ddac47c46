import { FlowNetwork } from "./mincut.js";
import { type ModelGraph, type Op, opInputs } from "./ops.js";

export type AttentionOp = Extract<Op, { kind: "attention" }>;

/**
 * A model slice: the serial program the model worker runs between two attention operators.
 * Slice j (j < n) ends by handing q/k/v to attention j; slice n ends with the logits.
 */
export interface Slice {
  readonly index: number;
  /** Non-attention ops in execution order: the q chain first, so q can be sent early. */
  readonly ops: readonly Op[];
  /** The attention this slice feeds; null for the last slice. */
  readonly attention: AttentionOp | null;
  /** ops[0 .. qReadyAfter) produce this slice's q; it can be sent once they ran. */
  readonly qReadyAfter: number;
  /** Tensors produced at or before this slice and used after its attention (the saved context). */
  readonly context: readonly string[];
}

export interface SlicedModel {
  readonly graph: ModelGraph;
  readonly slices: readonly Slice[];
  /** Bytes per element of activations on the wire and in saved context. */
  readonly elementBytes: number;
  /** Per attention: bytes per token sent (q + k + v) and received (output). */
  readonly wire: readonly {
    readonly layer: number;
    readonly sendBytes: number;
    readonly recvBytes: number;
  }[];
}

/**
 * The automated converter (Lamina §2): removes each attention operator and takes the minimum
 * weighted cut (edge weight = bytes per token the tensor carries) between what attention needs
 * and what needs attention. n attention operators give n + 1 slices. Works for any graph in the
 * op vocabulary: nothing here knows the architecture.
 */
export function sliceModel(graph: ModelGraph, elementBytes = 4): SlicedModel {
  const flow = dataflowOf(graph.ops);
  const attentionIdx = graph.ops.flatMap((op, i) => (op.kind === "attention" ? [i] : []));
  const bytesOf = (tensor: string): number => graph.tensors.get(tensor)!.width * elementBytes;
  const afterCut = attentionIdx.map((aj) => opsAfterCut(flow, aj, bytesOf));
  const afterCount = cutsBefore(graph.ops, afterCut);
  const sliceOf = (i: number): number =>
    graph.ops[i]!.kind === "attention" ? attentionIdx.indexOf(i) : afterCount[i]!;
  const slices: Slice[] = [];
  for (let s = 0; s <= attentionIdx.length; s++) {
    const attention = s < attentionIdx.length ? (graph.ops[attentionIdx[s]!] as AttentionOp) : null;
    slices.push(buildSlice(flow, s, attention, sliceOf));
  }
  const wire = attentionIdx.map((i) => {
    const a = graph.ops[i] as AttentionOp;
    return {
      layer: a.layer,
      sendBytes: bytesOf(a.q) + bytesOf(a.k) + bytesOf(a.v),
      recvBytes: bytesOf(a.out),
    };
  });
  return { graph, slices, elementBytes, wire };
}

/** The graph's edges looked up by tensor name: which op writes it and which ops read it. */
interface Dataflow {
  readonly ops: readonly Op[];
  readonly producer: ReadonlyMap<string, number>;
  readonly consumers: ReadonlyMap<string, readonly number[]>;
}

/** Indexes producers and consumers; a read of a tensor nothing writes is a malformed graph. */
function dataflowOf(ops: readonly Op[]): Dataflow {
  const producer = new Map<string, number>();
  ops.forEach((op, i) => {
    producer.set(op.out, i);
  });
  const consumers = new Map<string, number[]>();
  ops.forEach((op, i) => {
    for (const input of opInputs(op)) {
      if (!producer.has(input))
        throw new Error(`graph: op ${i} (${op.kind}) reads ${input}, which nothing produces`);
      const list = consumers.get(input) ?? [];
      list.push(i);
      consumers.set(input, list);
    }
  });
  return { ops, producer, consumers };
}

/**
 * The minimum cut around attention op `aj`: for each op, whether it lies after the cut.
 * Splitting every op into an op node and a tensor node puts the tensor's size on one edge, so the
 * cut pays for each tensor that crosses once, however many ops read it.
 */
function opsAfterCut(flow: Dataflow, aj: number, bytesOf: (tensor: string) => number): boolean[] {
  const { ops, producer, consumers } = flow;
  const att = ops[aj] as AttentionOp;
  const nOps = ops.length;
  // Nodes: ops 0..nOps-1, tensor nodes nOps..2nOps-1 (one per op output), source, sink.
  const S = 2 * nOps;
  const T = 2 * nOps + 1;
  const net = new FlowNetwork(2 * nOps + 2);
  const INF = Number.POSITIVE_INFINITY;
  for (let p = 0; p < nOps; p++) {
    if (p === aj) continue;
    const out = ops[p]!.out;
    net.addEdge(p, nOps + p, bytesOf(out));
    for (const c of consumers.get(out) ?? []) {
      if (c === aj) continue;
      net.addEdge(nOps + p, c, INF);
      net.addEdge(c, p, INF); // forbid a tensor produced after the cut being used before it
    }
  }
  for (const input of opInputs(att)) net.addEdge(S, producer.get(input)!, INF);
  for (const c of consumers.get(att.out) ?? []) net.addEdge(c, T, INF);
  const { sourceSide } = net.minCut(S, T);
  const side = new Array<boolean>(nOps);
  for (let i = 0; i < nOps; i++) side[i] = i === aj ? false : !sourceSide[i];
  return side;
}

/**
 * How many cuts each op lies after, which is its slice index. The cuts are computed one at a
 * time, so nothing forces them to nest: an op after cut j must also be after every earlier cut,
 * or no serial order of slices exists.
 */
function cutsBefore(ops: readonly Op[], afterCut: readonly boolean[][]): number[] {
  const afterCount = new Array<number>(ops.length).fill(0);
  for (const side of afterCut) for (let i = 0; i < ops.length; i++) if (side[i]) afterCount[i]!++;
  for (let i = 0; i < ops.length; i++) {
    const k = afterCount[i]!;
    for (let j = 0; j < afterCut.length; j++) {
      if (afterCut[j]![i] !== j < k)
        throw new Error(
          `converter: op ${i} (${ops[i]!.kind}) is not consistently ordered between attention cuts`,
        );
    }
  }
  return afterCount;
}

/** Slice `s`: its ops ordered q chain first, and the tensors it must save for later slices. */
function buildSlice(
  flow: Dataflow,
  s: number,
  attention: AttentionOp | null,
  sliceOf: (i: number) => number,
): Slice {
  const { ops, producer } = flow;
  const members = ops.flatMap((op, i) => (op.kind !== "attention" && sliceOf(i) === s ? [i] : []));
  const qChain = attention ? qChainOf(flow, attention, s, sliceOf) : new Set<number>();
  const order = topoOrder(members, ops, producer, (i) => (qChain.has(i) ? 0 : 1));
  return {
    index: s,
    ops: order.map((i) => ops[i]!),
    attention,
    qReadyAfter: qChain.size,
    context: savedContext(flow, s, sliceOf),
  };
}

/** The ops of slice `s` that q depends on: running them first lets q leave before k and v are done. */
function qChainOf(
  flow: Dataflow,
  attention: AttentionOp,
  s: number,
  sliceOf: (i: number) => number,
): Set<number> {
  const { ops, producer } = flow;
  const qChain = new Set<number>();
  const stack = [producer.get(attention.q)!];
  while (stack.length) {
    const i = stack.pop()!;
    if (qChain.has(i) || sliceOf(i) !== s || ops[i]!.kind === "attention") continue;
    qChain.add(i);
    for (const input of opInputs(ops[i]!)) stack.push(producer.get(input)!);
  }
  return qChain;
}

/**
 * Tensors produced at or before slice `s` and read by a later slice: the model worker must keep
 * them across the attention round trip. Attention's own inputs travel on the wire, not here.
 */
function savedContext(flow: Dataflow, s: number, sliceOf: (i: number) => number): string[] {
  const { ops, consumers } = flow;
  const context = new Set<string>();
  for (let i = 0; i < ops.length; i++) {
    if (ops[i]!.kind === "attention" || sliceOf(i) > s) continue;
    const out = ops[i]!.out;
    if ((consumers.get(out) ?? []).some((c) => sliceOf(c) > s && ops[c]!.kind !== "attention"))
      context.add(out);
  }
  return [...context];
}

/** Kahn's algorithm over a subset of ops; among ready ops the lower priority, then earlier index, goes first. */
function topoOrder(
  members: number[],
  ops: readonly Op[],
  producer: ReadonlyMap<string, number>,
  priority: (i: number) => number,
): number[] {
  const inSet = new Set(members);
  const pending = new Map<number, number>();
  const dependents = new Map<number, number[]>();
  for (const i of members) {
    let n = 0;
    for (const input of opInputs(ops[i]!)) {
      const p = producer.get(input)!;
      if (inSet.has(p)) {
        n++;
        dependents.set(p, [...(dependents.get(p) ?? []), i]);
      }
    }
    pending.set(i, n);
  }
  const ready = members.filter((i) => pending.get(i) === 0);
  const out: number[] = [];
  while (ready.length) {
    ready.sort((a, b) => priority(a) - priority(b) || a - b);
    const i = ready.shift()!;
    out.push(i);
    for (const d of dependents.get(i) ?? []) {
      pending.set(d, pending.get(d)! - 1);
      if (pending.get(d) === 0) ready.push(d);
    }
  }
  if (out.length !== members.length) throw new Error("converter: cycle in slice");
  return out;
}

/**
 * A human-readable account of the slicing, for `lamina convert --explain`: each slice's ops (runs
 * of one kind folded, e.g. "linear×3"), where q is ready, the context it saves, and the bytes per
 * token per layer on the wire, (H + 2·Hkv)·D·e out and H·D·e back, which is Lamina's
 * (2 + 2/G)·e·d when the heads span the hidden size.
 */
export function explainSlices(m: SlicedModel): string {
  const lines: string[] = [];
  const e = m.elementBytes;
  lines.push(
    `${m.slices.length} slices around ${m.wire.length} attention operators (activations ${e * 8}-bit on the wire)`,
  );
  for (const s of m.slices) {
    const ctxBytes = s.context.reduce((acc, t) => acc + m.graph.tensors.get(t)!.width * e, 0);
    const win = s.attention ? m.graph.attention.windows?.[s.attention.layer] : null;
    const scope = win ? `window ${win}, ` : "";
    const tail = s.attention
      ? `→ attention L${s.attention.layer} (${scope}q after ${s.qReadyAfter} ops)`
      : "→ logits";
    lines.push(
      `  slice ${s.index}: ${s.ops.length} ops [${foldKinds(s.ops)}] ${tail}; context saved: ${s.context.join(", ") || "none"} (${ctxBytes} B/token)`,
    );
  }
  const w = m.wire[0];
  if (w) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = m.graph.attention;
    lines.push(
      `per token per layer on the wire: send q+k+v ${w.sendBytes} B, receive ${w.recvBytes} B, total ${w.sendBytes + w.recvBytes} B`,
    );
    const total = (2 * H + 2 * Hkv) * D * e;
    let formula = `  (H + 2·Hkv)·D·e + H·D·e = (${H} + 2·${Hkv})·${D}·${e} + ${H}·${D}·${e} = ${total} B`;
    if (H % Hkv === 0) formula += ` = (2 + 2/${H / Hkv})·${e}·${H * D}`;
    lines.push(formula);
  }
  return lines.join("\n");
}

/** "rmsnorm, linear×3, split×3, rope×2": op kinds in order, runs of one kind folded. */
function foldKinds(ops: readonly Op[]): string {
  const runs: { kind: string; n: number }[] = [];
  for (const op of ops) {
    const last = runs[runs.length - 1];
    if (last && last.kind === op.kind) last.n++;
    else runs.push({ kind: op.kind, n: 1 });
  }
  return runs.map((r) => (r.n > 1 ? `${r.kind}×${r.n}` : r.kind)).join(", ");
}
