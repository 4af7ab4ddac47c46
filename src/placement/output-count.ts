import { loadNativeAddon } from "../kernels/native-addon.js";

/**
 * The batches of token events with a request's first token that the engine thread has posted to
 * the HTTP thread, and those the HTTP thread has sent, counted in the native addon where the data
 * plane's waits read them (spin_wait.h). While such a batch waits, a wait for an attention worker
 * offers its core at every step instead of spinning alone: where core binding puts the HTTP thread
 * on the engine's core, it sends the first tokens (and takes in new requests) during the wait, not
 * a scheduler time slice later (docs/BENCHMARKS.md, "First tokens sent during the data plane's waits").
 */
export interface OutputCount {
  /** Counts one batch about to be posted; returns the count to send with it. */
  posted(): number;
  /** The HTTP thread has sent every batch up to `n`. */
  sent(n: number): void;
}

/** The count in this thread's instance of the native addon; null where the addon does not load. */
export function outputCount(): OutputCount | null {
  try {
    const { addon } = loadNativeAddon();
    return { posted: () => addon.outputPosted(), sent: (n) => addon.outputSent(n) };
  } catch {
    return null;
  }
}
