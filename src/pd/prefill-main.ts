import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import { openShmChannel } from "../transport/shm-channel.js";
import { PrefillServer } from "./prefill-server.js";
import { threadShare } from "./thread-share.js";

/**
 * A locally spawned prefill instance (forked by the decode instance): loads the same model, serves
 * the one shared-memory channel its parent made, and exits with it. Settings arrive as JSON in
 * argv[2] (see SpawnedPrefillInstance).
 */
export interface PrefillProcessSettings {
  readonly model?: string;
  readonly tokenizerPath?: string;
  readonly backend: "auto" | "native" | "reference";
  readonly shm: string;
  readonly kvMemory: number;
  readonly prefillThreads: number;
  readonly attentionThreads: number;
  readonly maxTokens: number;
}

async function main(): Promise<void> {
  const s = JSON.parse(process.argv[2] ?? "{}") as PrefillProcessSettings;
  const log = (line: string) => process.stderr.write(`prefill-instance[${process.pid}]: ${line}\n`);
  const backend = loadKernelBackend({ backend: s.backend, threads: s.prefillThreads });
  const pool = { current: s.prefillThreads };
  const model = await loadModel(s.model, s.tokenizerPath ? { tokenizerPath: s.tokenizerPath } : {});
  const channel = openShmChannel(s.shm);
  new PrefillServer(
    channel,
    model,
    threadShare(backend, s.prefillThreads, pool),
    threadShare(backend, s.attentionThreads, pool),
    { kvMemory: s.kvMemory, log: () => {} },
    s.maxTokens,
  );
  channel.onClose(() => process.exit(0));
  log(
    `serving ${channel.description}: prefill ${s.prefillThreads} thread(s), attention executor ${s.attentionThreads}`,
  );
  process.send?.({ type: "ready" });
  process.once("disconnect", () => process.exit(0));
}

main().catch((e: Error) => {
  process.stderr.write(`prefill instance failed: ${e.message}\n`);
  process.exit(1);
});
