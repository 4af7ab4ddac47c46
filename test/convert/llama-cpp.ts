import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";

/**
 * node-llama-cpp on its prebuilt CPU binary only: never build llama.cpp, never download its
 * sources or anything else (test machines reach only the npm registry), no GPU probing.
 */
export function openLlamaCpp(): Promise<Llama> {
  return getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
}

/**
 * A test file's scratch folder and llama.cpp: llama.cpp is opened before the file's tests, and
 * released, with the folder removed, after them.
 */
export function llamaCppFixture(prefix: string): {
  readonly tmp: string;
  /** `vocabOnly`: the tokenizer alone (a GGUF file of metadata without tensors loads). */
  loadModel(file: string, opts?: { vocabOnly?: boolean }): Promise<LlamaModel>;
} {
  const tmp = mkdtempSync(path.join(tmpdir(), prefix));
  let llama: Llama | undefined;
  before(async () => {
    llama = await openLlamaCpp();
  });
  after(async () => {
    await llama?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });
  return {
    tmp,
    loadModel: (file, opts) =>
      llama!.loadModel({ modelPath: file, gpuLayers: 0, vocabOnly: opts?.vocabOnly ?? false }),
  };
}

/**
 * Greedy continuation in llama.cpp from exactly these prompt ids, up to maxTokens or through the
 * first EOS (included), on a fixed thread count.
 */
export async function llamaCppGreedy(
  model: LlamaModel,
  promptIds: readonly number[],
  maxTokens: number,
  eosId: number,
  threads: number,
): Promise<number[]> {
  const context = await model.createContext({
    contextSize: Math.min(model.trainContextSize, promptIds.length + maxTokens + 16),
    sequences: 1,
    threads,
  });
  try {
    const out: number[] = [];
    const seq = context.getSequence();
    for await (const t of seq.evaluate(promptIds as Token[], { temperature: 0, yieldEogToken: true })) {
      out.push(t);
      if (out.length >= maxTokens || t === eosId) break;
    }
    return out;
  } finally {
    await context.dispose();
  }
}
