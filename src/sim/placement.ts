/**
 * The four ways to place a model on a cluster, as plain data (what the CLI and the planner
 * produce, what results echo back). Device names refer to the accelerator catalog.
 */
export type Placement =
  | {
      /** vLLM-style tensor-parallel instances doing everything (or decode only). */
      readonly kind: "homogeneous";
      readonly device: string;
      readonly tp: number;
      readonly replicas: number;
    }
  | {
      /** Lamina DOP (a, b): a model devices (n−1 replicas), b attention devices (head-partitioned). */
      readonly kind: "lamina";
      readonly modelDevice: string;
      readonly attentionDevice: string;
      readonly a: number;
      readonly b: number;
      /** Concurrent micro-batches n (rotational staggered pipelining over n−1 replicas); 0 = auto. */
      readonly microBatches: number;
    }
  | {
      /** Prefill/decode disaggregation (DistServe/Splitwise style). */
      readonly kind: "pd";
      readonly prefillDevice: string;
      readonly prefillTp: number;
      readonly prefillInstances: number;
      readonly decodeDevice: string;
      readonly decodeTp: number;
      readonly decodeInstances: number;
    }
  | {
      /** PD plus Adrenaline: part of decode attention (and its KV) offloaded to the prefill instances. */
      readonly kind: "adrenaline";
      readonly prefillDevice: string;
      readonly prefillTp: number;
      readonly prefillInstances: number;
      readonly decodeDevice: string;
      readonly decodeTp: number;
      readonly decodeInstances: number;
      /** Target share of decode requests offloaded, N/(M+N), or "auto" for the load-aware bound. */
      readonly offloadRatio: number | "auto";
      /** Compute share the prefill keeps on its devices (the attention executor gets the rest). */
      readonly prefillShare: number;
    };

export type PlacementKind = Placement["kind"];

/** Short human label: "4×H100 TP4", "Lamina(2,4) H100+H20", … */
export function placementLabel(p: Placement): string {
  switch (p.kind) {
    case "homogeneous":
      return `${p.replicas > 1 ? `${p.replicas}×` : ""}TP${p.tp} ${p.device}`;
    case "lamina":
      return `Lamina(${p.a},${p.b}) ${p.modelDevice}+${p.attentionDevice}${p.microBatches ? ` n=${p.microBatches}` : ""}`;
    case "pd":
      return `PD ${p.prefillInstances}×${p.prefillDevice}TP${p.prefillTp} + ${p.decodeInstances}×${p.decodeDevice}TP${p.decodeTp}`;
    case "adrenaline":
      return (
        `Adrenaline ${p.prefillInstances}×${p.prefillDevice}TP${p.prefillTp} + ${p.decodeInstances}×${p.decodeDevice}TP${p.decodeTp}` +
        ` offload=${p.offloadRatio === "auto" ? "auto" : p.offloadRatio}`
      );
  }
}

/** (device name, count) pairs of a placement, for pricing. */
export function placementDevices(p: Placement): Array<{ device: string; count: number }> {
  switch (p.kind) {
    case "homogeneous":
      return [{ device: p.device, count: p.tp * p.replicas }];
    case "lamina":
      return [
        { device: p.modelDevice, count: p.a },
        { device: p.attentionDevice, count: p.b },
      ];
    case "pd":
    case "adrenaline":
      return [
        { device: p.prefillDevice, count: p.prefillTp * p.prefillInstances },
        { device: p.decodeDevice, count: p.decodeTp * p.decodeInstances },
      ];
  }
}
