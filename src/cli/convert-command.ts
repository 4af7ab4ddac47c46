import type { Command } from "commander";
import { explainSlices, sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import { gqaGroup } from "../model/config.js";
import { loadModel } from "../model/load.js";

/** `lamina convert`: the automated converter's view of a model (and, later, format conversion). */
export function registerConvertCommand(program: Command): void {
  program
    .command("convert")
    .description("cut a model at its attention operators and explain the slices (--explain)")
    .option("--model <path>", "Hugging Face directory or llama2.c .bin (default: the demo model)")
    .option("--tokenizer <path>", "tokenizer for a llama2.c checkpoint")
    .option("--explain", "print slices, cut tensors and bytes per token per layer on the wire")
    .action(async (flags: { model?: string; tokenizer?: string; explain?: boolean }) => {
      const model = await loadModel(flags.model, flags.tokenizer ? { tokenizerPath: flags.tokenizer } : {});
      const sliced = sliceModel(buildLlamaGraph(model.config));
      process.stdout.write(`${model.source.label}\n`);
      process.stdout.write(
        `${explainSlices(sliced, { gqaGroup: gqaGroup(model.config), hiddenSize: model.config.hiddenSize })}\n`,
      );
    });
}
