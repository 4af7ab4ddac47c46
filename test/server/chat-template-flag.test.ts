// serve --chat-template: a model whose files have no chat template gets the one given (on the HTTP
// thread and on the tokenizer thread, which renders long conversations), one with its own template
// has it replaced; a template that does not parse stops start-up naming the flag; the flag takes a
// file or the template itself and refuses anything else. The model answers from a successor table
// (successor-model.ts): its reply says which prompt it saw.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import { addEngineFlags, type EngineFlagValues, engineOptionsFromFlags } from "../../src/cli/engine-flags.js";
import { createEngine } from "../../src/placement/create-engine.js";
import { writeSuccessorModel } from "../helpers/successor-model.js";
import { chatOnce } from "./chat-request.js";
import { type LiveServer, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-chat-template-flag-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const c = (ch: string) => ch.charCodeAt(0);
const EOS = 258;
const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{{ eos_token }}T";

describe("serve --chat-template (real engine)", () => {
  const dir = path.join(tmp, "model");
  let plain: LiveServer;
  let given: LiveServer;
  before(async () => {
    writeSuccessorModel(dir, {
      // A 4096-byte token lets a conversation too long to render inline fit the 256-token context.
      added: [
        { content: "<|end|>", special: true },
        { content: "y".repeat(4096), special: false },
      ],
      // No template of its own: a chat prompt is the plain transcript, ending "assistant:".
      template: "",
      eos: [EOS],
      next: [
        [c(":"), c("X"), 10],
        [c("X"), EOS, 10],
        [c("T"), c("O"), 10],
        [c("O"), c("K"), 10],
        [c("K"), EOS, 10],
      ],
    });
    plain = await startServer({ model: dir });
    given = await startServer({ model: dir, chatTemplate: TEMPLATE });
  });
  after(async () => {
    await plain.close();
    await given.close();
  });

  const ask = async (s: LiveServer, content: string) => {
    const { choice, usage } = await chatOnce(s, { messages: [{ role: "user", content }] });
    return [choice.message.content, usage.prompt_tokens];
  };

  it("the given template renders the prompt, inline and on the tokenizer thread", async () => {
    assert.equal((await ask(plain, "hi"))[0], "X");
    // BOS, "<user>hi" byte by byte, "</s>" (the tokenizer's EOS as eos_token: one token), "T".
    assert.deepEqual(await ask(given, "hi"), ["OK", 1 + "<user>hi".length + 1 + 1]);
    const long = "y".repeat(5 * 4096);
    const r = await given.client.chat.completions.create({
      model: given.engine.model.id,
      messages: [{ role: "user", content: long }],
      temperature: 0,
      max_tokens: 3,
    });
    assert.equal(r.choices[0]!.message.content, "OK");
  });

  it("a template that does not parse stops start-up, naming the flag", async () => {
    await assert.rejects(
      createEngine({ model: dir, chatTemplate: "{% for m in messages %}" }),
      /--chat-template/,
    );
  });

  it("the flag takes a file or the template itself, and refuses anything else", () => {
    const file = path.join(tmp, "t.jinja");
    writeFileSync(file, TEMPLATE);
    const parse = (value: string) => {
      const cmd = addEngineFlags(new Command())
        .exitOverride()
        .configureOutput({ writeErr: () => {} });
      cmd.parse(["--chat-template", value], { from: "user" });
      return engineOptionsFromFlags(cmd.opts() as EngineFlagValues).chatTemplate;
    };
    assert.equal(parse(file), TEMPLATE);
    assert.equal(parse(TEMPLATE), TEMPLATE);
    assert.throws(() => parse(path.join(tmp, "missing.jinja")), /is neither a file nor a Jinja template/);
  });
});
