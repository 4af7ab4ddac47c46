import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { downloadHubModel, hubSnapshotDir, isHubId, parseHubGguf } from "../../src/model/hub.js";
import { loadModel } from "../../src/model/load.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-hub-"));
const repoDir = path.join(tmp, "repo");
const REPO = "tiny-org/tiny-llama";
/** A second repository holding only GGUF files (as llama.cpp model repositories do). */
const GGUF_REPO = "tiny-org/tiny-llama-gguf";
const ggufDir = path.join(tmp, "gguf-repo");
const repoDirs: Record<string, string> = { [REPO]: repoDir, [GGUF_REPO]: ggufDir };

/** What the fake Hub was asked for: "GET path range". */
const requests: string[] = [];
let server: Server;
let endpoint: string;
const savedEnv = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN };

/** A minimal stand-in for the Hub's tree listing and resolve endpoints (with range requests). */
function fakeHub(): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${url.pathname} ${req.headers.range ?? ""}`.trim());
    const listed = Object.keys(repoDirs).find((r) => url.pathname === `/api/models/${r}/tree/main`);
    if (listed) {
      const files = readdirSync(repoDirs[listed]!).map((f) => ({
        type: "file",
        path: f,
        size: statSync(path.join(repoDirs[listed]!, f)).size,
        oid: "0",
      }));
      // An extra file the loader does not need: it must not be fetched.
      files.push({ type: "file", path: "pytorch_model.bin", size: 10, oid: "0" });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(files));
      return;
    }
    const repo = Object.keys(repoDirs).find((r) => url.pathname.startsWith(`/${r}/resolve/main/`));
    const prefix = `/${repo}/resolve/main/`;
    const file = repo ? path.join(repoDirs[repo]!, url.pathname.slice(prefix.length)) : "";
    if (!file || !existsSync(file)) {
      res.writeHead(404, { "X-Error-Code": "EntryNotFound" });
      res.end("not found");
      return;
    }
    const body = readFileSync(file);
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (m) {
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), body.length - 1);
      res.writeHead(206, { "content-range": `bytes ${start}-${end}/${body.length}`, etag: '"e"' });
      res.end(body.subarray(start, end + 1));
    } else {
      res.writeHead(200, { etag: '"e"', "content-length": body.length });
      res.end(body);
    }
  });
}

before(async () => {
  writeTinyModel(repoDir, "llama-gqa");
  const tiny = await loadModel(repoDir);
  mkdirSync(ggufDir);
  modelToGguf(tiny, path.join(ggufDir, "tiny-q8_0.gguf"), { quantize: "q8_0" });
  modelToGguf(tiny, path.join(ggufDir, "tiny-f32.gguf"));
  server = fakeHub();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  delete process.env.HF_TOKEN;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(tmp, { recursive: true, force: true });
});

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe("Hugging Face Hub downloads", () => {
  test("ORG/NAME ids are told apart from paths", () => {
    assert.ok(isHubId("meta-llama/Llama-3.2-1B"));
    assert.ok(isHubId("Qwen/Qwen2.5-0.5B-Instruct"));
    for (const s of ["./models/x", "/abs/path", "a/b/c", "demo", "x.bin", "../b", "a/.."]) {
      assert.equal(isHubId(s), false, s);
    }
  });

  test("an unreachable Hub is a clear error that suggests a local path", async () => {
    process.env.HF_ENDPOINT = `http://127.0.0.1:${await closedPort()}`;
    const cacheDir = path.join(tmp, "cache-unreachable");
    await assert.rejects(
      downloadHubModel("some-org/some-model", { cacheDir, progressBar: false }),
      (e: Error) =>
        e.message.startsWith("could not reach the Hugging Face Hub to fetch some-org/some-model: ") &&
        e.message.includes("ECONNREFUSED") &&
        e.message.endsWith("pass a local path instead"),
    );
    // And through loadModel, with the cache from LAMINA_CACHE.
    process.env.LAMINA_CACHE = cacheDir;
    try {
      await assert.rejects(loadModel("some-org/some-model"), /could not reach the Hugging Face Hub to fetch/);
    } finally {
      delete process.env.LAMINA_CACHE;
    }
  });

  test("downloads only the needed files, skips complete ones, resumes partial ones", async () => {
    process.env.HF_ENDPOINT = endpoint;
    const cacheDir = path.join(tmp, "cache");
    const progress: number[] = [];
    const dir = await downloadHubModel(REPO, {
      cacheDir,
      progressBar: false,
      onProgress: (p) => progress.push(p.done),
    });
    assert.equal(dir, hubSnapshotDir(REPO, "main", cacheDir));
    for (const f of readdirSync(repoDir)) {
      assert.deepEqual(readFileSync(path.join(dir, f)), readFileSync(path.join(repoDir, f)), f);
    }
    assert.equal(existsSync(path.join(dir, "pytorch_model.bin")), false, "unneeded files are not fetched");
    assert.ok(!requests.some((r) => r.includes("pytorch_model.bin")));
    assert.equal(
      progress.at(-1),
      readdirSync(repoDir).reduce((n, f) => n + statSync(path.join(repoDir, f)).size, 0),
    );

    // Second run: everything is complete, nothing but the listing is requested.
    requests.length = 0;
    await downloadHubModel(REPO, { cacheDir, progressBar: false });
    assert.deepEqual(
      requests.filter((r) => r.includes("/resolve/")),
      [],
    );

    // A partial download continues with a range request from where it stopped.
    const weights = path.join(dir, "model.safetensors");
    const full = readFileSync(weights);
    rmSync(weights);
    writeFileSync(`${weights}.part`, full.subarray(0, 1000));
    requests.length = 0;
    await downloadHubModel(REPO, { cacheDir, progressBar: false });
    assert.ok(
      requests.some((r) => r.endsWith(`model.safetensors bytes=1000-${full.length - 1}`)),
      requests.join("\n"),
    );
    assert.deepEqual(readFileSync(weights), full);
    assert.equal(existsSync(`${weights}.part`), false);

    // loadModel(ORG/NAME) loads from the cache and labels the model with its id.
    process.env.LAMINA_CACHE = cacheDir;
    try {
      const model = await loadModel(REPO);
      assert.equal(model.source.kind, "hf");
      assert.equal(model.source.label, REPO);
      assert.equal(model.config.numKvHeads, 2);
    } finally {
      delete process.env.LAMINA_CACHE;
    }
  });

  test("a complete cached copy is used when the Hub cannot be reached", async () => {
    const cacheDir = path.join(tmp, "cache");
    process.env.HF_ENDPOINT = `http://127.0.0.1:${await closedPort()}`;
    const dir = await downloadHubModel(REPO, { cacheDir, progressBar: false });
    assert.ok(existsSync(path.join(dir, "model.safetensors")));
  });

  test("a malformed HF_TOKEN is named, not sent", async () => {
    process.env.HF_TOKEN = "not-a-token";
    try {
      await assert.rejects(downloadHubModel(REPO, { cacheDir: path.join(tmp, "c2") }), /HF_TOKEN is set but/);
    } finally {
      delete process.env.HF_TOKEN;
    }
  });

  test("a repository the Hub does not have", async () => {
    process.env.HF_ENDPOINT = endpoint;
    await assert.rejects(
      downloadHubModel("nobody/nothing", { cacheDir: path.join(tmp, "c3"), progressBar: false }),
      /no model repository nobody\/nothing on the Hugging Face Hub \(HTTP 404\)/,
    );
  });
});

describe("a Hub repository's GGUF file (ORG/NAME/FILE.gguf)", () => {
  test("is told apart from ids and paths", () => {
    assert.deepEqual(parseHubGguf("org/name/model-Q4_K_M.gguf"), {
      repoId: "org/name",
      file: "model-Q4_K_M.gguf",
    });
    for (const s of ["org/name", "org/name/sub/x.gguf", "./a/b.gguf", "org/name/x.bin", "org/../x.gguf"])
      assert.equal(parseHubGguf(s), null, s);
  });

  test("fetches that one file and loads it; a missing file is named with the ones there are", async () => {
    process.env.HF_ENDPOINT = endpoint;
    process.env.LAMINA_CACHE = path.join(tmp, "cache-gguf");
    try {
      requests.length = 0;
      const m = await loadModel(`${GGUF_REPO}/tiny-q8_0.gguf`);
      assert.match(m.source.label, /tiny-q8_0\.gguf \(GGUF llama, F32 \+ Q8_0\)/);
      const fetched = requests.filter((r) => r.includes("/resolve/"));
      assert.ok(fetched.length > 0 && fetched.every((r) => r.includes("tiny-q8_0.gguf")), fetched.join("; "));
      await assert.rejects(
        loadModel(`${GGUF_REPO}/tiny-q2_k.gguf`),
        /tiny-org\/tiny-llama-gguf has no file tiny-q2_k\.gguf \(its \.gguf files: (tiny-f32\.gguf, tiny-q8_0\.gguf|tiny-q8_0\.gguf, tiny-f32\.gguf)\)/,
      );
    } finally {
      delete process.env.LAMINA_CACHE;
    }
  });
});
