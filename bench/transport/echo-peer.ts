/**
 * The far side of the transport benchmark (forked by transport.ts): answers every request with a
 * tensor of the same shape, the way an attention worker answers q/k/v with its output.
 *   shm NAME            blocking loop (receiveSync/sendSync), as a dedicated worker would run
 *   tcp PORT SECRET     event-loop echo; the reply is written from a preallocated buffer
 */
import { connectTcp, openShmChannel, type ReceivedMessage } from "../../src/transport/index.js";

const [mode, a, b] = process.argv.slice(2);
let out = new Uint8Array(0);

function reply(m: ReceivedMessage) {
  const t = m.tensors[0]!;
  if (out.byteLength < t.data.byteLength) out = new Uint8Array(t.data.byteLength);
  const src = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  out.set(src);
  const n = t.data.length;
  const data = t.dtype === "f32" ? new Float32Array(out.buffer, 0, n) : new Uint16Array(out.buffer, 0, n);
  return { type: m.type, requestId: m.requestId, tensors: [{ dtype: t.dtype, shape: t.shape, data }] };
}

if (mode === "shm") {
  const ch = openShmChannel(a!, { spinMicros: 200 });
  try {
    for (;;) {
      const m = ch.receiveSync();
      if (m) ch.sendSync(reply(m));
    }
  } catch {
    process.exit(0);
  }
} else if (mode === "tcp") {
  const ch = await connectTcp({ host: "127.0.0.1", port: Number(a), secret: b!, log: () => {} });
  ch.onMessage((m) => void ch.send(reply(m)).catch(() => {}));
  ch.onClose(() => process.exit(0));
  process.send!({ ready: true });
}
