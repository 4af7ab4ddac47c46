import type { DeviceProfile } from "../../src/sim/profile.js";
import type { ProfileDetails } from "./profile-run.js";

const g = (x: number) => (x / 1e9).toFixed(1);
const us = (x: number) => (x * 1e6).toFixed(1);

/** The profile and its sweeps as tables; rates beside the machine's own GEMV/stream limits. */
export function printProfile(p: DeviceProfile, d: ProfileDetails): void {
  console.log(
    `\nprofile ${p.name}: ${d.shape} shape, ${d.dtype} weights, ${d.kvDtype} KV, load average ${d.loadAverage.map((x) => x.toFixed(2)).join(" ")}`,
  );
  for (const s of [d.gemm, d.gemmSplit]) {
    console.log(
      `\nGEMM, ${s.threads} thread(s): fit peak ${g(s.peakFlops)} GFLOP/s, half at batch ${s.halfBatch.toFixed(1)}`,
    );
    console.log("batch |  ms/pass | GFLOP/s | % of fit peak | weight GB/s");
    for (const pt of s.points)
      console.log(
        `${String(pt.batch).padStart(5)} | ${(pt.seconds * 1e3).toFixed(2).padStart(8)} | ${pt.gflops.toFixed(1).padStart(7)} | ${((100 * pt.gflops * 1e9) / s.peakFlops).toFixed(0).padStart(13)} | ${pt.gbPerS.toFixed(1).padStart(11)}`,
      );
  }
  for (const a of [d.attention, d.attentionSplit]) {
    console.log(
      `\ndecode attention, ${a.threads} thread(s), batch ${a.batch}: ${g(a.bandwidth)} GB/s (slope), ${us(a.fixedS)} µs fixed per call`,
    );
    console.log("context |  ms/call | KV GB/s | % of batch-1 GEMV weight rate");
    for (const pt of a.points)
      console.log(
        `${String(pt.context).padStart(7)} | ${(pt.seconds * 1e3).toFixed(3).padStart(8)} | ${pt.gbPerS.toFixed(1).padStart(7)} | ${((100 * pt.gbPerS * 1e9) / (a.threads === d.gemm.threads ? d.gemm.weightBandwidth : d.gemmSplit.weightBandwidth)).toFixed(0).padStart(6)}`,
      );
  }
  const o = d.overheads;
  console.log(
    `\nengine overheads (skeleton): ${us(o.layerOverheadS)} µs per layer per step, ${us(o.tokenOverheadS)} µs per sequence per step, shm one-way ${us(o.transportLatencyS)} µs; shm bandwidth ${g(d.transportBandwidth)} GB/s, message one-way ${us(d.messageLatencyS)} µs`,
  );
  for (const s of d.stall)
    console.log(
      `host stall, ${s.threads} thread(s): ${s.passes} back-to-back passes at batch ${s.batch}, mean ${(s.meanS * 1e3).toFixed(2)} ms over median ${(s.medianS * 1e3).toFixed(2)} ms = ${s.factor.toFixed(3)}`,
    );
}
