// A minimal CLI entry with only `serve`, so the tests can run it as a real process.
import { Command } from "commander";
import { registerServeCommand } from "../../src/cli/serve-command.js";

const program = new Command("lamina");
registerServeCommand(program);
await program.parseAsync(process.argv);
