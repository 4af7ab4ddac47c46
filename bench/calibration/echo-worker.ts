/**
 * The far end of the calibration's message-link measurement, on its own thread and event loop as
 * a prefill instance is in its own process: opens the shared-memory channel it is given and
 * answers every message with a copy of its first tensor after holding it for `holdMicros` (busy,
 * as an attention executor computes before it replies).
 */
import { parentPort, workerData } from "node:worker_threads";
import { type Message, openShmChannel } from "../../src/transport/index.js";

const { name, holdMicros } = workerData as { name: string; holdMicros: number };
const channel = openShmChannel(name);
channel.onMessage((m) => {
  const end = performance.now() + holdMicros / 1000;
  while (performance.now() < end) {}
  const t = m.tensors[0]!;
  void channel.send({
    type: m.type,
    requestId: m.requestId,
    ints: [],
    tensors: [{ dtype: "f32", shape: t.shape.slice(), data: new Float32Array(t.data as Float32Array) }],
  } as Message);
});
parentPort!.on("message", () => {
  void channel.close().then(() => parentPort!.postMessage("closed"));
});
parentPort!.postMessage("ready");
