import { Command, CommanderError } from "commander";
import { registerAttentionWorkerCommand } from "./attention-worker-command.js";
import { registerBenchCommand } from "./bench-command.js";
import { registerConvertCommand } from "./convert-command.js";
import { registerDoctorCommand } from "./doctor-command.js";
import { registerGenerateCommand } from "./generate-command.js";
import { registerModelWorkerCommand } from "./model-worker-command.js";
import { registerPrefillInstanceCommand } from "./prefill-instance-command.js";
import { registerServeCommand } from "./serve-command.js";
import { registerSimCommands } from "./sim-commands.js";

/** `lamina`: every command of the project behind one entry point. */
const program = new Command()
  .name("lamina")
  .description("Lamina-TS: LLM serving with model-attention disaggregation and attention offloading")
  .showHelpAfterError()
  .exitOverride();

registerServeCommand(program);
registerGenerateCommand(program);
registerConvertCommand(program);
registerDoctorCommand(program);
registerAttentionWorkerCommand(program);
registerModelWorkerCommand(program);
registerPrefillInstanceCommand(program);
registerBenchCommand(program);
registerSimCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  process.stderr.write(`lamina: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
