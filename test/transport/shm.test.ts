import assert from "node:assert/strict";
import { once } from "node:events";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import {
  ChannelClosedError,
  type CloseInfo,
  copyMessage,
  createShmChannel,
  createShmChannelPair,
  FrameError,
  openShmChannel,
  type ReceivedMessage,
  RpcClient,
  type ShmChannel,
} from "../../src/transport/index.js";
import { forkGroup, type GroupChild, within } from "../helpers/processes.js";
import {
  assertSameMessage,
  ensureShmAddon,
  leakedSegments,
  makeTensor,
  sampleMessages,
  waitFor,
} from "./helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const peerScript = path.join(here, "fixtures/peer.js");

/** Every child a test starts: stopped (with anything it started) after the file, whatever failed. */
const children: GroupChild[] = [];

function startPeer(args: string[]): GroupChild {
  const c = forkGroup(peerScript, args, { stdio: ["ignore", "ignore", "pipe", "ipc"] });
  children.push(c);
  return c;
}

function startEcho(ch: ShmChannel): GroupChild {
  return startPeer(["shm-echo", ch.name]);
}

describe("shared-memory transport", () => {
  before(() => ensureShmAddon());
  after(async () => {
    for (const c of children) await c.stop();
    assert.deepEqual(leakedSegments(), [], "no shm segment of this process is left behind");
  });

  it("round-trips every dtype and shape with a child process, and wraps the ring many times", {
    timeout: 30_000,
  }, async () => {
    const ch = createShmChannel({ capacityBytes: 1 << 20 });
    const child = startEcho(ch);
    await ch.waitForPeer();
    assert.deepEqual(leakedSegments(), [], "the name is unlinked once both sides are attached");
    const got: ReceivedMessage[] = [];
    ch.onMessage((m) => got.push(copyMessage(m)));
    const msgs = sampleMessages();
    const rounds = 40; // ~40 × 4 × 26 KiB through a 1 MiB ring: many wraps
    for (let k = 0; k < rounds; k++) for (const m of msgs) await ch.send(m);
    await waitFor(() => got.length === rounds * msgs.length, "echoes", 20000);
    for (let i = 0; i < got.length; i++) assertSameMessage(got[i]!, msgs[i % msgs.length]!);
    await ch.close();
    await child.exited;
  });

  it("carries frames near the ring's limit and refuses larger ones locally", {
    timeout: 30_000,
  }, async () => {
    const ch = createShmChannel({ capacityBytes: 1 << 22 }); // max frame 2 MiB - 8
    const child = startEcho(ch);
    await ch.waitForPeer();
    assert.equal(ch.limits.maxFrameBytes, (1 << 21) - 8);
    const rpc = new RpcClient(ch, { timeoutMs: 10000 });
    const n = ((1 << 21) - 8 - 24 - 40) / 4; // a frame of exactly the limit
    const big = { type: 3, tensors: [makeTensor("f32", [n], 9)] };
    for (let k = 0; k < 5; k++) {
      const same = await rpc.request(big, (r) => {
        assertSameMessage(r, big);
        return true;
      });
      assert.ok(same);
    }
    await assert.rejects(ch.send({ type: 3, tensors: [makeTensor("f32", [n + 2], 9)] }), FrameError);
    assert.equal(ch.closed, false);
    await ch.close();
    await child.exited;
  });

  it("detects a killed child (opener) without hanging, in async and blocking receive", {
    timeout: 30_000,
  }, async () => {
    const ch = createShmChannel({ capacityBytes: 1 << 16, pollSliceMs: 20 });
    const child = startEcho(ch);
    await ch.waitForPeer();
    const rpc = new RpcClient(ch, { timeoutMs: 0 });
    const closed = new Promise<CloseInfo>((resolve) => ch.onClose(resolve));
    assert.equal(await rpc.request({ type: 1, ints: [5] }, (r) => r.ints[0]), 5);
    child.child.kill("SIGKILL");
    await child.exited;
    const pending = rpc.request({ type: 1 }, () => 0);
    await assert.rejects(pending, ChannelClosedError);
    assert.match((await closed).reason, /peer process \d+ is gone|peer closed/);

    const ch2 = createShmChannel({ capacityBytes: 1 << 16, pollSliceMs: 20 });
    const child2 = startEcho(ch2);
    await ch2.waitForPeer();
    child2.child.kill("SIGKILL");
    await child2.exited;
    assert.throws(() => ch2.receiveSync(5000), ChannelClosedError);
  });

  it("detects a killed parent-side creator from the opener", { timeout: 30_000 }, async () => {
    const child = startPeer(["shm-create-echo"]);
    const [{ name }] = (await within(once(child.child, "message"), 10000, "the peer's segment name")) as [
      { name: string },
    ];
    const ch = openShmChannel(name, { pollSliceMs: 20 });
    const rpc = new RpcClient(ch, { timeoutMs: 0 });
    assert.equal(await rpc.request({ type: 1, ints: [7] }, (r) => r.ints[0]), 7);
    const closed = new Promise<CloseInfo>((resolve) => ch.onClose(resolve));
    child.child.kill("SIGKILL");
    assert.match((await closed).reason, /peer process \d+ is gone|peer closed/);
    assert.deepEqual(leakedSegments(child.pid), [], "the opener removed the name at attach");
  });

  it("connects both ends in one process, and a close reaches the other end", {
    timeout: 30_000,
  }, async () => {
    const [a, b] = createShmChannelPair({ capacityBytes: 1 << 16 });
    const got: ReceivedMessage[] = [];
    b.onMessage((m) => got.push(copyMessage(m)));
    const closed = new Promise<CloseInfo>((resolve) => b.onClose(resolve));
    const msgs = sampleMessages();
    for (const m of msgs) await a.send(m);
    await waitFor(() => got.length === msgs.length, "messages");
    for (let i = 0; i < got.length; i++) assertSameMessage(got[i]!, msgs[i]!);
    await a.close();
    assert.equal((await closed).reason, "peer closed the channel");
    await b.close();
  });

  it("works between worker threads with blocking receiveSync/sendSync", { timeout: 30_000 }, async () => {
    const ch = createShmChannel({ capacityBytes: 1 << 16 });
    const worker = new Worker(
      `const { openShmChannel } = await import(${JSON.stringify(path.resolve(here, "../../src/transport/index.js"))});
       const ch = openShmChannel(${JSON.stringify(ch.name)});
       for (;;) { let m; try { m = ch.receiveSync(); } catch { break; }
         const x = m.tensors[0].data; const y = new Float32Array(x.length); for (let i = 0; i < x.length; i++) y[i] = 2 * x[i];
         ch.sendSync({ type: m.type, requestId: m.requestId, tensors: [{ dtype: "f32", shape: m.tensors[0].shape, data: y }] }); }`,
      { eval: true, type: "module" } as never,
    );
    await ch.waitForPeer();
    const rpc = new RpcClient(ch);
    const x = makeTensor("f32", [4, 8], 3);
    const y = await rpc.request({ type: 2, tensors: [x] }, (r) => Array.from(r.tensors[0]!.data));
    assert.deepEqual(
      y,
      Array.from(x.data, (v) => 2 * v),
    );
    await ch.close();
    await once(worker, "exit");
  });
});
