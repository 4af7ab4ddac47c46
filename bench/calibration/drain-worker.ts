/**
 * The far end of the calibration's KV-handoff measurement, on its own thread as a decode instance
 * is in its own process: opens the shared-memory channel it is given and reads every message (the
 * decode instance imports each KV layer while the prefill instance computes the next one, so the
 * reader's work is not what is timed; only that it keeps the ring drained).
 */
import { parentPort, workerData } from "node:worker_threads";
import { openShmChannel } from "../../src/transport/index.js";

const { name } = workerData as { name: string };
const channel = openShmChannel(name);
channel.onMessage(() => {});
parentPort!.on("message", () => {
  void channel.close().then(() => parentPort!.postMessage("closed"));
});
parentPort!.postMessage("ready");
