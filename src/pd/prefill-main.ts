import { openShmChannel } from "../transport/shm-channel.js";
import { openPrefillHost, type PrefillHostSettings } from "./prefill-host.js";

/**
 * A locally spawned prefill instance (forked by the decode instance): loads the same model, serves
 * the one shared-memory channel its parent made, and exits with it. Settings arrive as JSON in
 * argv[2] (see SpawnedPrefillInstance).
 */
export interface PrefillProcessSettings extends PrefillHostSettings {
  readonly shm: string;
}

async function main(): Promise<void> {
  const s = JSON.parse(process.argv[2] ?? "{}") as PrefillProcessSettings;
  const log = (line: string) => process.stderr.write(`prefill-instance[${process.pid}]: ${line}\n`);
  const host = await openPrefillHost(s);
  const channel = openShmChannel(s.shm);
  host.serve(channel, () => {});
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
