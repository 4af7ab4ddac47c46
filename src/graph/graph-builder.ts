import type { Op, RowSpace, TensorInfo } from "./ops.js";

/** Collects a graph's ops and declares its tensors (name, width, row space) as they are produced. */
export class GraphBuilder {
  readonly ops: Op[] = [];
  readonly tensors = new Map<string, TensorInfo>();

  /** Declares a tensor and returns its name. */
  tensor(name: string, width: number, rows: RowSpace = "tokens"): string {
    if (this.tensors.has(name)) throw new Error(`graph: tensor ${name} declared twice`);
    this.tensors.set(name, { name, width, rows });
    return name;
  }

  /** Declares `name` of `width` and appends the op that produces it (built from the name). */
  emit(name: string, width: number, op: (out: string) => Op, rows: RowSpace = "tokens"): string {
    const out = this.tensor(name, width, rows);
    this.ops.push(op(out));
    return out;
  }
}
