import { parentPort } from "node:worker_threads";
import { ChatTemplateError, chatPromptIds } from "../tokenizer/prompt-ids.js";
import { withChatTemplate } from "../tokenizer/template-override.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { loadTokenizerFor } from "./load-tokenizer.js";
import {
  type FromTokenizer,
  TOKENIZER_PROTOCOL_VERSION,
  type ToTokenizer,
} from "./tokenizer-thread-protocol.js";

/**
 * The tokenizer thread: encodes prompts and renders chat templates too large to do on the HTTP
 * thread without stalling every other request (a few MB of text take seconds).
 */
if (!parentPort) throw new Error("tokenizer-thread must run in a worker thread");
const port = parentPort;
let tokenizer: Tokenizer | null = null;
const post = (m: FromTokenizer, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

function reply(id: number, work: () => number[]): void {
  try {
    const ids = Int32Array.from(work());
    post({ v: 1, type: "ids", id, ids }, [ids.buffer as ArrayBuffer]);
  } catch (e) {
    post({
      v: 1,
      type: "error",
      id,
      message: (e as Error).message,
      template: e instanceof ChatTemplateError,
    });
  }
}

port.on("message", async (m: ToTokenizer) => {
  if (m?.v !== TOKENIZER_PROTOCOL_VERSION) return;
  if (m.type === "init") {
    try {
      const own = await loadTokenizerFor(m.source, m.tokenizerPath);
      tokenizer = m.chatTemplate ? withChatTemplate(own, m.chatTemplate, "--chat-template") : own;
      post({ v: 1, type: "ready" });
    } catch (e) {
      post({ v: 1, type: "init_error", message: (e as Error).message });
    }
    return;
  }
  const tok = tokenizer;
  if (!tok) {
    post({ v: 1, type: "error", id: m.id, message: "the tokenizer thread is not ready", template: false });
    return;
  }
  if (m.type === "encode") reply(m.id, () => tok.encode(m.text, { addSpecialTokens: m.addSpecialTokens }));
  else reply(m.id, () => chatPromptIds(tok, m.turns, m.variables));
});
