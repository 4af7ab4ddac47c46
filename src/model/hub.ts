import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { downloadFile, HubApiError, type ListFileEntry, listFiles } from "@huggingface/hub";
import cliProgress from "cli-progress";
import type { ProgressCallback } from "./load-progress.js";

/**
 * `--model ORG/NAME`: fetches what we need of a Hugging Face Hub model repository into a local
 * cache (LAMINA_CACHE, else ~/.cache/lamina/hub) and returns the directory, ready for loadHfModel;
 * `--model ORG/NAME/FILE.gguf` fetches that one GGUF file of the repository instead.
 * Only the files the loader reads are fetched; files already complete are skipped and partial
 * ones (*.part) resume with a range request. HF_TOKEN authenticates, HF_ENDPOINT changes the Hub.
 */

/** Root-level files fetched when present (besides the safetensors weights). */
const SMALL_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "chat_template.json",
];
const INDEX_FILE = "model.safetensors.index.json";
/** Written once every file of a snapshot is complete; lets an offline run reuse the cache. */
const COMPLETE_MARKER = ".lamina-complete.json";
const LIST_TIMEOUT_MS = 30_000;

export interface HubDownloadOptions {
  readonly revision?: string;
  readonly cacheDir?: string;
  readonly onProgress?: ProgressCallback;
  /** Draw a cli-progress bar on stderr (default: when stderr is a terminal). */
  readonly progressBar?: boolean;
  /** Fetch only this .gguf file at the repository's root (a GGUF file carries config and tokenizer). */
  readonly ggufFile?: string;
}

/** ORG/NAME/FILE.gguf: a GGUF file at the root of a Hub repository, or null. */
export function parseHubGguf(spec: string): { repoId: string; file: string } | null {
  const m = /^([^/]+\/[^/]+)\/([^/]+\.gguf)$/.exec(spec);
  if (!m || !isHubId(m[1]!) || m[2]!.startsWith(".")) return null;
  return { repoId: m[1]!, file: m[2]! };
}

/** An ORG/NAME repository id, as the Hub spells them. */
export function isHubId(spec: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(spec) && !spec.includes("..");
}

export function hubCacheRoot(): string {
  return process.env.LAMINA_CACHE
    ? path.resolve(process.env.LAMINA_CACHE)
    : path.join(homedir(), ".cache", "lamina", "hub");
}

/** Where a repository's snapshot lives in the cache. */
export function hubSnapshotDir(repoId: string, revision = "main", cacheDir = hubCacheRoot()): string {
  return path.join(cacheDir, repoId.replace("/", "--"), revision.replace(/[^A-Za-z0-9._-]/g, "_"));
}

export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

function describeCause(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: string }).code;
    return `${e.message} (${code ? `${code}: ` : ""}${cause.message})`;
  }
  return e.message;
}

function hubFailure(repoId: string, e: unknown): HubError {
  if (e instanceof HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new HubError(
        `the Hugging Face Hub refused access to ${repoId} (HTTP ${e.statusCode}): the model may be gated or private; ` +
          "set HF_TOKEN to a token that can read it, or pass a local path instead",
      );
    }
    if (e.statusCode === 404) {
      return new HubError(`no model repository ${repoId} on the Hugging Face Hub (HTTP 404); check the name`);
    }
  }
  return new HubError(
    `could not reach the Hugging Face Hub to fetch ${repoId}: ${describeCause(e)}; pass a local path instead`,
  );
}

/** Picks the files to fetch: the small files present, plus the weights the index names (or model.safetensors). */
async function chooseFiles(
  repoId: string,
  entries: readonly ListFileEntry[],
  fetchIndex: (size: number) => Promise<string>,
  ggufFile?: string,
): Promise<{ path: string; size: number }[]> {
  const byPath = new Map(entries.filter((e) => e.type === "file").map((e) => [e.path, e.size]));
  if (ggufFile !== undefined) {
    const size = byPath.get(ggufFile);
    if (size === undefined) {
      const ggufs = [...byPath.keys()].filter((p) => p.endsWith(".gguf"));
      throw new HubError(
        `${repoId} has no file ${ggufFile} (its .gguf files: ${ggufs.length > 0 ? ggufs.join(", ") : "none"})`,
      );
    }
    return [{ path: ggufFile, size }];
  }
  const chosen: { path: string; size: number }[] = [];
  const add = (p: string) => {
    const size = byPath.get(p);
    if (size === undefined) throw new HubError(`${repoId}: the Hub lists no file ${p}`);
    chosen.push({ path: p, size });
  };
  for (const f of SMALL_FILES) if (byPath.has(f)) add(f);
  if (!byPath.has("config.json"))
    throw new HubError(`${repoId} has no config.json: not a transformers model`);
  if (byPath.has(INDEX_FILE)) {
    add(INDEX_FILE);
    const index = JSON.parse(await fetchIndex(byPath.get(INDEX_FILE)!)) as {
      weight_map?: Record<string, string>;
    };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) add(shard);
  } else if (byPath.has("model.safetensors")) {
    add("model.safetensors");
  } else {
    const root = [...byPath.keys()].filter((p) => !p.includes("/") && p.endsWith(".safetensors"));
    if (root.length === 0) {
      throw new HubError(`${repoId} has no safetensors weights (only safetensors checkpoints can be loaded)`);
    }
    root.forEach(add);
  }
  return chosen;
}

/** Downloads (or finds in the cache) the files of `repoId` and returns the local directory. */
export async function downloadHubModel(repoId: string, opts: HubDownloadOptions = {}): Promise<string> {
  if (!isHubId(repoId)) throw new HubError(`"${repoId}" is not a Hugging Face Hub id (ORG/NAME)`);
  const revision = opts.revision ?? "main";
  const dir = hubSnapshotDir(repoId, revision, opts.cacheDir);
  const token = process.env.HF_TOKEN || undefined;
  if (token !== undefined && !token.startsWith("hf_")) {
    throw new HubError("HF_TOKEN is set but is not a Hugging Face access token (they start with hf_)");
  }
  const hub = {
    repo: { type: "model" as const, name: repoId },
    revision,
    hubUrl: process.env.HF_ENDPOINT || undefined,
    accessToken: token,
  };

  let entries: ListFileEntry[];
  try {
    entries = [];
    const timedFetch: typeof fetch = (input, init) =>
      fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(LIST_TIMEOUT_MS) });
    for await (const e of listFiles({ ...hub, fetch: timedFetch })) entries.push(e);
  } catch (e) {
    const failure = hubFailure(repoId, e);
    const cached = opts.ggufFile ?? COMPLETE_MARKER;
    if (existsSync(path.join(dir, cached))) {
      process.stderr.write(`${failure.message}\nusing the cached copy in ${dir}\n`);
      return dir;
    }
    throw failure;
  }

  mkdirSync(dir, { recursive: true });
  let files: { path: string; size: number }[];
  try {
    files = await chooseFiles(
      repoId,
      entries,
      async (size) => {
        await fetchOne(hub, dir, INDEX_FILE, size, () => {});
        return readFileSync(path.join(dir, INDEX_FILE), "utf8");
      },
      opts.ggufFile,
    );
  } catch (e) {
    throw e instanceof HubError ? e : hubFailure(repoId, e);
  }

  const total = files.reduce((n, f) => n + f.size, 0);
  const bar =
    (opts.progressBar ?? process.stderr.isTTY)
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `${repoId} [{bar}] {percentage}% | {value}/{total} MB | {file}`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  bar?.start(Math.ceil(total / 1e6), 0, { file: "" });
  let doneBefore = 0;
  try {
    for (const f of files) {
      await fetchOne(hub, dir, f.path, f.size, (bytes) => {
        const done = doneBefore + bytes;
        bar?.update(Math.floor(done / 1e6), { file: f.path });
        opts.onProgress?.({ phase: "download", file: f.path, done, total });
      });
      doneBefore += f.size;
    }
  } catch (e) {
    throw e instanceof HubError ? e : hubFailure(repoId, e);
  } finally {
    bar?.stop();
  }
  // A single GGUF file is its own marker (complete once renamed from .part).
  if (!opts.ggufFile)
    writeFileSync(path.join(dir, COMPLETE_MARKER), JSON.stringify({ repoId, revision, files }, null, 2));
  return dir;
}

interface HubParams {
  readonly repo: { type: "model"; name: string };
  readonly revision: string;
  readonly hubUrl: string | undefined;
  readonly accessToken: string | undefined;
}

/**
 * Fetches one file into dir. A complete file is kept; a
 * partial download (<file>.part) continues from where it stopped.
 */
async function fetchOne(
  hub: HubParams,
  dir: string,
  file: string,
  size: number,
  onBytes: (bytes: number) => void,
): Promise<void> {
  const target = path.join(dir, file);
  if (existsSync(target) && statSync(target).size === size) {
    onBytes(size);
    return;
  }
  const part = `${target}.part`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > size) have = 0;
  if (have === size && existsSync(part)) {
    renameSync(part, target); // finished earlier, but the rename never happened
    onBytes(size);
    return;
  }
  const blob = await downloadFile({ ...hub, path: file });
  if (blob === null) throw new HubError(`${hub.repo.name}: file ${file} not found on the Hub`);
  if (blob.size !== size) have = 0; // the file changed on the Hub since the listing: start over
  const source = have > 0 ? blob.slice(have) : blob;
  let written = have;
  onBytes(written);
  const counter = async function* (chunks: AsyncIterable<Uint8Array>) {
    for await (const chunk of chunks) {
      written += chunk.length;
      onBytes(written);
      yield chunk;
    }
  };
  await pipeline(
    Readable.fromWeb(source.stream() as unknown as WebReadableStream<Uint8Array>),
    counter,
    createWriteStream(part, { flags: have > 0 ? "a" : "w" }),
  );
  if (statSync(part).size !== blob.size) {
    throw new HubError(
      `${hub.repo.name}: download of ${file} ended early (${statSync(part).size}/${blob.size} bytes)`,
    );
  }
  renameSync(part, target);
}
