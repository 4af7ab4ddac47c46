/**
 * Control payloads are untrusted JSON: a receiver states the shape it expects with a zod schema
 * and gets either typed data or a FrameError that says what was wrong.
 */
import type { z } from "zod";
import { FrameError } from "./errors.js";
import type { ReceivedMessage } from "./message.js";

export function parseControl<S extends z.ZodType>(
  msg: ReceivedMessage,
  schema: S,
  what = "control payload",
): z.output<S> {
  const result = schema.safeParse(msg.control);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
    throw new FrameError(
      `${what} of message type ${msg.type} is invalid${where}: ${issue?.message ?? "bad value"}`,
    );
  }
  return result.data;
}
