import type { Command } from "commander";
import { GGUF_QUANTIZE, type GgufQuantize } from "../convert/gguf-format.js";
import { modelToGguf } from "../convert/to-gguf.js";
import { explainSlices, sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import { describeFamily } from "../model/config.js";
import { loadModel } from "../model/load.js";
import { describeRotation } from "../util/rotation.js";
import { intArg } from "./parse.js";

interface ConvertFlags {
  model?: string;
  tokenizer?: string;
  explain?: boolean;
  to?: string;
  out?: string;
  quantize?: string;
  modelWorkers?: number;
  pipelineDepth?: number;
}

const FORMATS = ["gguf"];

/** `lamina convert`: the automated converter's view of a model (--explain), and export to GGUF (--to gguf). */
export function registerConvertCommand(program: Command): void {
  program
    .command("convert")
    .description(
      "explain a model's slices (--explain), or write it as GGUF for llama.cpp (--to gguf --out FILE)",
    )
    .option(
      "--model <path>",
      "Hugging Face directory, llama2.c .bin, .gguf file or Hub id (default: the demo model)",
    )
    .option(
      "--tokenizer <path>",
      "tokenizer for a llama2.c checkpoint, or a Hugging Face tokenizer directory",
    )
    .option("--explain", "print slices, cut tensors and bytes per token per layer on the wire")
    .option(
      "--model-workers <a>",
      "with --explain: the rotation of the slices over a model workers (serve --model-workers)",
      intArg(1, 32),
    )
    .option(
      "--pipeline-depth <n>",
      "with --model-workers: micro-batches in flight (default a + 1)",
      intArg(1, 16),
    )
    .option("--to <format>", `write the model in another format (${FORMATS.join(", ")})`)
    .option("--out <file>", "output file for --to")
    .option(
      "--quantize <type>",
      `with --to gguf: quantize the matrices (${GGUF_QUANTIZE.join(", ")}; llama.cpp's mixes)`,
    )
    .action(async (flags: ConvertFlags) => {
      if (flags.to !== undefined && !FORMATS.includes(flags.to)) {
        throw new Error(`--to ${flags.to}: unknown format; supported: ${FORMATS.join(", ")}`);
      }
      if (flags.to !== undefined && !flags.out) throw new Error(`--to ${flags.to} needs --out FILE`);
      if (flags.out && flags.to === undefined) throw new Error("--out needs --to FORMAT (e.g. --to gguf)");
      const quantize = quantizeFlag(flags);
      const model = await loadModel(flags.model, flags.tokenizer ? { tokenizerPath: flags.tokenizer } : {});
      if (flags.explain || flags.to === undefined) {
        const sliced = sliceModel(buildLlamaGraph(model.config));
        process.stdout.write(`${model.source.label} (${describeFamily(model.config)})\n`);
        process.stdout.write(`${explainSlices(sliced)}\n`);
        if (flags.modelWorkers !== undefined) {
          const a = flags.modelWorkers;
          const n = flags.pipelineDepth ?? a + 1;
          process.stdout.write(
            `\nrotation over ${a} model worker(s), ${n} micro-batches in flight (slice k of micro-batch j on worker (j + k) mod ${a}):\n`,
          );
          for (const line of describeRotation(n, sliced.slices.length, a))
            process.stdout.write(`  ${line}\n`);
        }
      }
      if (flags.to === "gguf" && flags.out)
        writeGgufWithProgress(model, flags.out, flags.tokenizer, quantize);
    });
}

/** --quantize, checked before the model is loaded. */
function quantizeFlag(flags: ConvertFlags): GgufQuantize | undefined {
  if (flags.quantize === undefined) return undefined;
  if (flags.to !== "gguf") throw new Error("--quantize needs --to gguf");
  if (!(GGUF_QUANTIZE as readonly string[]).includes(flags.quantize)) {
    throw new Error(
      `--quantize ${flags.quantize}: unknown quantization; supported: ${GGUF_QUANTIZE.join(", ")}`,
    );
  }
  return flags.quantize as GgufQuantize;
}

function writeGgufWithProgress(
  model: Awaited<ReturnType<typeof loadModel>>,
  out: string,
  tokenizer: string | undefined,
  quantize: GgufQuantize | undefined,
): void {
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const summary = modelToGguf(model, out, {
    // An HF --tokenizer is a directory; a llama2.c one was already used by the loader.
    ...(tokenizer && model.source.kind === "hf" ? { tokenizerDir: tokenizer } : {}),
    ...(quantize ? { quantize } : {}),
    onTensor: (i, n, name) => {
      // One line rewritten in place on a terminal; every tenth tensor as its own line otherwise.
      const line = `writing ${out}: tensor ${i + 1}/${n} ${name}`;
      if (tty) process.stderr.write(`\r\x1b[K${line}`);
      else if (i % 10 === 0 || i === n - 1) process.stderr.write(`${line}\n`);
    },
  });
  if (tty) process.stderr.write("\n");
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `wrote ${out}: GGUF v3, architecture ${summary.architecture}, ${summary.fileType} weights, ` +
      `tokenizer ${summary.tokenizerModel}, ${summary.tensorCount} tensors, ${summary.metadataCount} metadata keys, ` +
      `${(summary.bytes / 2 ** 20).toFixed(1)} MiB in ${secs} s\n`,
  );
}
