/** Catalog entries in SI units (bytes, bytes/s, FLOP/s, seconds, USD/h). */

export interface Accelerator {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly source: string;
  /** Dense bf16 peak, FLOP/s. */
  readonly flops: number;
  readonly memoryBytes: number;
  /** HBM/DRAM bandwidth, bytes/s. */
  readonly memoryBandwidth: number;
  /** NVLink-class bandwidth per direction, bytes/s (0: none). */
  readonly interChipBandwidth: number;
  /** NIC line rate, bytes/s. */
  readonly nicBandwidth: number;
  readonly powerW: number | null;
  readonly pricePerHour: number;
}

export interface SimModel {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly source: string;
  readonly params: number;
  readonly weightBytes: number;
  readonly layers: number;
  readonly hidden: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly bytesPerElement: number;
}

export interface Network {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly source: string;
  /** Achieved one-direction bandwidth per device link, bytes/s. */
  readonly bandwidth: number;
  /** One-way per-message latency, s. */
  readonly latency: number;
}
