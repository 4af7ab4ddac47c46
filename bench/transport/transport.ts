/**
 * Transport benchmark: round-trip latency and bandwidth of per-layer messages (tokens × hidden,
 * fp32 and bf16) over shared memory and TCP loopback, each against memcpy bandwidth measured in
 * the same run for the same size. A round trip sends one [tokens, hidden] tensor to a child
 * process and gets one of the same size back.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/transport/transport.js [--hidden 4096] [--seconds 0.4]
 *
 * Prints a table and writes bench/results/transport.json.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Channel,
  createShmChannel,
  listenTcp,
  RpcClient,
  type WireDType,
} from "../../src/transport/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const HIDDEN = arg("hidden", 4096);
const SECONDS = arg("seconds", 0.4);
const TOKENS = [1, 4, 16, 64, 256];
const DTYPES: WireDType[] = ["f32", "bf16"];

function tensorFor(dtype: WireDType, tokens: number) {
  const n = tokens * HIDDEN;
  const data = dtype === "f32" ? new Float32Array(n).fill(1.5) : new Uint16Array(n).fill(0x3fc0);
  return { dtype, shape: [tokens, HIDDEN], data };
}

/** memcpy GB/s for `bytes`-sized copies (TypedArray.set), best of a few timed batches. */
function memcpyGBs(bytes: number): number {
  const src = new Uint8Array(bytes).fill(7);
  const dst = new Uint8Array(bytes);
  const reps = Math.max(1, Math.floor((64 << 20) / bytes));
  let best = 0;
  for (let k = 0; k < 5; k++) {
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < reps; r++) dst.set(src);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, (bytes * reps) / s / 1e9);
  }
  return best;
}

interface Row {
  transport: string;
  dtype: WireDType;
  tokens: number;
  bytesEachWay: number;
  iterations: number;
  rttMedianUs: number;
  rttP99Us: number;
  /** Payload bytes moved per second, both directions counted. */
  bandwidthGBs: number;
  memcpyGBs: number;
  ratioToMemcpy: number;
}

async function measure(
  transport: string,
  rpc: RpcClient,
  dtype: WireDType,
  tokens: number,
  memcpy: number,
): Promise<Row> {
  const t = tensorFor(dtype, tokens);
  const msg = { type: 1, ints: [tokens], tensors: [t] };
  const read = (r: { tensors: readonly { data: { length: number } }[] }) => r.tensors[0]!.data.length;
  for (let i = 0; i < 20; i++) await rpc.request(msg, read);
  const times: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  while (performance.now() < until || times.length < 20) {
    const t0 = performance.now();
    const n = await rpc.request(msg, read);
    times.push(performance.now() - t0);
    if (n !== t.data.length) throw new Error("bad echo");
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  const bytes = t.data.byteLength;
  const bw = (2 * bytes) / (median / 1000) / 1e9;
  return {
    transport,
    dtype,
    tokens,
    bytesEachWay: bytes,
    iterations: times.length,
    rttMedianUs: median * 1000,
    rttP99Us: times[Math.floor(times.length * 0.99)]! * 1000,
    bandwidthGBs: bw,
    memcpyGBs: memcpy,
    ratioToMemcpy: bw / memcpy,
  };
}

async function withShm(run: (rpc: RpcClient) => Promise<void>): Promise<void> {
  const ch = createShmChannel({ capacityBytes: 32 << 20, spinMicros: 200 });
  const child = fork(path.join(here, "echo-peer.js"), ["shm", ch.name], { stdio: "inherit" });
  await ch.waitForPeer();
  await run(new RpcClient(ch));
  await ch.close();
  await once(child, "exit");
}

async function withTcp(run: (rpc: RpcClient) => Promise<void>): Promise<void> {
  const secret = "bench-secret";
  let accept!: (ch: Channel) => void;
  const accepted = new Promise<Channel>((resolve) => (accept = resolve));
  const srv = await listenTcp({ port: 0, secret }, (ch) => accept(ch));
  const child = fork(path.join(here, "echo-peer.js"), ["tcp", String(srv.port), secret], {
    stdio: "inherit",
  });
  await run(new RpcClient(await accepted));
  await srv.close();
  await once(child, "exit");
}

const rows: Row[] = [];
const memcpyBySize = new Map<number, number>();
const memcpyLarge = memcpyGBs(64 << 20);
for (const dtype of DTYPES)
  for (const tokens of TOKENS) {
    const bytes = tensorFor(dtype, tokens).data.byteLength;
    if (!memcpyBySize.has(bytes)) memcpyBySize.set(bytes, memcpyGBs(bytes));
  }
for (const [name, wrap] of [
  ["shm", withShm],
  ["tcp", withTcp],
] as const) {
  await wrap(async (rpc) => {
    for (const dtype of DTYPES)
      for (const tokens of TOKENS) {
        const bytes = tensorFor(dtype, tokens).data.byteLength;
        rows.push(await measure(name, rpc, dtype, tokens, memcpyBySize.get(bytes)!));
      }
  });
}

console.log(`transport round trips, hidden ${HIDDEN}; memcpy (64 MiB) ${memcpyLarge.toFixed(1)} GB/s`);
console.log("transport dtype tokens  bytes/way   RTT med µs  RTT p99 µs   GB/s   memcpy GB/s  % of memcpy");
for (const r of rows)
  console.log(
    `${r.transport.padEnd(9)} ${r.dtype.padEnd(5)} ${String(r.tokens).padStart(6)} ${String(r.bytesEachWay).padStart(10)} ${r.rttMedianUs.toFixed(1).padStart(12)} ${r.rttP99Us.toFixed(1).padStart(11)} ${r.bandwidthGBs.toFixed(2).padStart(7)} ${r.memcpyGBs.toFixed(1).padStart(12)} ${(100 * r.ratioToMemcpy).toFixed(1).padStart(11)}%`,
  );
const outDir = path.join(root, "bench/results");
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, "transport.json");
writeFileSync(
  file,
  JSON.stringify({ hidden: HIDDEN, seconds: SECONDS, memcpyLargeGBs: memcpyLarge, rows }, null, 2),
);
console.log(`wrote ${path.relative(process.cwd(), file)}`);
