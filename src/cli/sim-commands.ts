import type { Command } from "commander";
import { registerPlanCommand } from "./plan-command.js";
import { registerSimCommand } from "./sim-command.js";
import { type SimIo, stdoutIo } from "./sim-common.js";

/** The simulator's whole command line: `lamina sim …` and `lamina plan`. */
export function registerSimCommands(program: Command, io: SimIo = stdoutIo): void {
  registerSimCommand(program, io);
  registerPlanCommand(program, io);
}
