/**
 * Minimum s-t cut by max flow (Dinic's algorithm) on a small directed graph with real-valued
 * capacities. Graphs here have a few hundred nodes, so clarity wins over speed.
 */
export class FlowNetwork {
  private readonly head: number[];
  private readonly to: number[] = [];
  private readonly cap: number[] = [];
  private readonly next: number[] = [];

  constructor(readonly size: number) {
    this.head = new Array<number>(size).fill(-1);
  }

  addEdge(from: number, to: number, capacity: number): void {
    this.push(from, to, capacity);
    this.push(to, from, 0);
  }

  private push(from: number, to: number, capacity: number): void {
    this.to.push(to);
    this.cap.push(capacity);
    this.next.push(this.head[from]!);
    this.head[from] = this.to.length - 1;
  }

  /** Returns the max-flow value and, for each node, whether it is on the source side of a min cut. */
  minCut(source: number, sink: number): { value: number; sourceSide: boolean[] } {
    let flow = 0;
    const level = new Array<number>(this.size);
    const iter = new Array<number>(this.size);
    const bfs = (): boolean => {
      level.fill(-1);
      level[source] = 0;
      const queue = [source];
      for (let qi = 0; qi < queue.length; qi++) {
        const u = queue[qi]!;
        for (let e = this.head[u]!; e !== -1; e = this.next[e]!) {
          if (this.cap[e]! > 1e-12 && level[this.to[e]!] === -1) {
            level[this.to[e]!] = level[u]! + 1;
            queue.push(this.to[e]!);
          }
        }
      }
      return level[sink] !== -1;
    };
    const dfs = (u: number, f: number): number => {
      if (u === sink) return f;
      for (; iter[u]! !== -1; iter[u] = this.next[iter[u]!]!) {
        const e = iter[u]!;
        const v = this.to[e]!;
        if (this.cap[e]! > 1e-12 && level[v] === level[u]! + 1) {
          const d = dfs(v, Math.min(f, this.cap[e]!));
          if (d > 0) {
            this.cap[e] = this.cap[e]! - d;
            this.cap[e ^ 1] = this.cap[e ^ 1]! + d;
            return d;
          }
        }
      }
      return 0;
    };
    while (bfs()) {
      for (let i = 0; i < this.size; i++) iter[i] = this.head[i]!;
      for (let f = dfs(source, Number.POSITIVE_INFINITY); f > 0; f = dfs(source, Number.POSITIVE_INFINITY)) {
        if (!Number.isFinite(f))
          throw new Error("min cut: infinite capacity path from source to sink (constraints conflict)");
        flow += f;
      }
    }
    // Source side: nodes reachable from the source in the residual graph.
    const sourceSide = new Array<boolean>(this.size).fill(false);
    const stack = [source];
    sourceSide[source] = true;
    while (stack.length) {
      const u = stack.pop()!;
      for (let e = this.head[u]!; e !== -1; e = this.next[e]!) {
        if (this.cap[e]! > 1e-12 && !sourceSide[this.to[e]!]) {
          sourceSide[this.to[e]!] = true;
          stack.push(this.to[e]!);
        }
      }
    }
    return { value: flow, sourceSide };
  }
}
