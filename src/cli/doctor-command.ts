import type { Command } from "commander";
import { kernelReport } from "../kernels/index.js";

/** `lamina doctor`: which kernel variant this machine gets, and why. */
export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("report CPU features and the kernel variant chosen")
    .option("--json", "print the report as JSON")
    .action((flags: { json?: boolean }) => {
      const r = kernelReport();
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      process.stdout.write(`node ${process.version} on ${process.platform}/${process.arch}\n`);
      for (const [k, v] of Object.entries(r))
        process.stdout.write(`${k}: ${Array.isArray(v) ? v.join(" ") : String(v)}\n`);
    });
}
