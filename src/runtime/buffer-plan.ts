import { type ModelGraph, type Op, opAliasableInput, opInputs, type RowSpace } from "../graph/ops.js";

/**
 * Assigns every activation tensor of one forward pass to a reusable buffer by liveness (linear
 * scan over execution order), so a context needs a handful of buffers instead of one per tensor
 * per layer. Planned once per model; each in-flight micro-batch gets its own copy of the buffers.
 */
export interface BufferPlan {
  /** Buffer index for each tensor name. */
  readonly slotOf: ReadonlyMap<string, number>;
  /** Per buffer: row space and the widest tensor it holds. */
  readonly buffers: readonly { readonly rows: RowSpace; readonly width: number }[];
}

export function planBuffers(graph: ModelGraph, order: readonly Op[]): BufferPlan {
  const lastUse = new Map<string, number>();
  order.forEach((op, i) => {
    for (const input of opInputs(op)) lastUse.set(input, i);
  });
  const slotOf = new Map<string, number>();
  const buffers: { rows: RowSpace; width: number }[] = [];
  const free: number[] = [];
  order.forEach((op, i) => {
    const info = graph.tensors.get(op.out)!;
    const alias = opAliasableInput(op);
    let slot = -1;
    if (alias && lastUse.get(alias) === i && graph.tensors.get(alias)!.rows === info.rows) {
      slot = slotOf.get(alias)!;
      buffers[slot]!.width = Math.max(buffers[slot]!.width, info.width);
    } else {
      // Smallest free buffer of the same row space that fits; else grow the best one; else a new one.
      let best = -1;
      for (const f of free) {
        const b = buffers[f]!;
        if (b.rows !== info.rows) continue;
        if (best === -1) best = f;
        else {
          const cur = buffers[best]!;
          const fits = b.width >= info.width;
          const curFits = cur.width >= info.width;
          if ((fits && !curFits) || (fits === curFits && (fits ? b.width < cur.width : b.width > cur.width)))
            best = f;
        }
      }
      if (best !== -1) {
        free.splice(free.indexOf(best), 1);
        buffers[best]!.width = Math.max(buffers[best]!.width, info.width);
        slot = best;
      } else {
        slot = buffers.length;
        buffers.push({ rows: info.rows, width: info.width });
      }
    }
    slotOf.set(op.out, slot);
    for (const input of new Set(opInputs(op))) {
      if (lastUse.get(input) === i && slotOf.get(input) !== slot) free.push(slotOf.get(input)!);
    }
    // An output nobody reads (the logits) keeps its buffer.
  });
  return { slotOf, buffers };
}
