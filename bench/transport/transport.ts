/**
 * Transport benchmark: round-trip latency and bandwidth of per-layer messages (tokens × hidden,
 * fp32 and bf16) over shared memory and TCP loopback, each against limits measured in the same run:
 * memcpy bandwidth for the same size, and a native round trip of the same bytes between two
 * processes (shared memory: a spin-only ping-pong through one mapping, a cache-line ping-pong at
 * 0 bytes; TCP: a plain blocking-socket ping-pong with TCP_NODELAY). A round trip sends one
 * [tokens, hidden] tensor to a child process and gets one of the same size back.
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
import { memcpyGBs, nativeRoundTrip } from "./limits.js";

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
  /** The native round trip of the same bytes over the same kind of link, median and p99 (µs). */
  nativeMedianUs: number;
  nativeP99Us: number;
  /** The transport's median round trip over the native one's. */
  ratioToNative: number;
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
    nativeMedianUs: 0,
    nativeP99Us: 0,
    ratioToNative: 0,
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
// The native limits run after the transports, so neither shares the cores with the other.
const cacheLine = await nativeRoundTrip("shm", 0);
for (const r of rows) {
  const limit = await nativeRoundTrip(r.transport === "shm" ? "shm" : "tcp", r.bytesEachWay);
  r.nativeMedianUs = limit.median;
  r.nativeP99Us = limit.p99;
  r.ratioToNative = r.rttMedianUs / limit.median;
}

console.log(
  `transport round trips, hidden ${HIDDEN}; memcpy (64 MiB) ${memcpyLarge.toFixed(1)} GB/s; ` +
    `native cache-line ping-pong ${cacheLine.median.toFixed(2)} µs median, ${cacheLine.p99.toFixed(2)} µs p99`,
);
console.log(
  "transport dtype tokens  bytes/way   RTT med µs  RTT p99 µs   GB/s   memcpy GB/s  % of memcpy  native med µs  native p99 µs  × native",
);
for (const r of rows)
  console.log(
    `${r.transport.padEnd(9)} ${r.dtype.padEnd(5)} ${String(r.tokens).padStart(6)} ${String(r.bytesEachWay).padStart(10)} ${r.rttMedianUs.toFixed(1).padStart(12)} ${r.rttP99Us.toFixed(1).padStart(11)} ${r.bandwidthGBs.toFixed(2).padStart(7)} ${r.memcpyGBs.toFixed(1).padStart(12)} ${(100 * r.ratioToMemcpy).toFixed(1).padStart(11)}% ${r.nativeMedianUs.toFixed(2).padStart(14)} ${r.nativeP99Us.toFixed(2).padStart(14)} ${r.ratioToNative.toFixed(1).padStart(9)}`,
  );
const outDir = path.join(root, "bench/results");
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, "transport.json");
writeFileSync(
  file,
  JSON.stringify(
    { hidden: HIDDEN, seconds: SECONDS, memcpyLargeGBs: memcpyLarge, cacheLinePingPongUs: cacheLine, rows },
    null,
    2,
  ),
);
console.log(`wrote ${path.relative(process.cwd(), file)}`);
