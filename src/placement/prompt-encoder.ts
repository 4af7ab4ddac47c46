import { Worker } from "node:worker_threads";
import type { PromptEncoder } from "../engine/api.js";
import type { ModelSource } from "../model/types.js";
import { ChatTemplateError, chatPromptIds, maxPieceBytes, minTokens } from "../tokenizer/prompt-ids.js";
import type { ChatMessage, Tokenizer } from "../tokenizer/types.js";
import type { FromTokenizer, ToTokenizer } from "./tokenizer-thread-protocol.js";

/** Texts up to this many characters are encoded inline: well under a millisecond. */
const INLINE_CHARS = 16 * 1024;

/**
 * Prompt encoding for the HTTP thread: small inputs inline, large ones on a tokenizer thread of
 * their own, so no single request stalls the event loop (and with it every stream and /health).
 * The thread starts on the first large input and is kept for the next.
 */
export class ThreadedPromptEncoder implements PromptEncoder {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (ids: number[]) => void; reject: (e: Error) => void }
  >();
  private maxPiece: number | null | undefined;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly source: ModelSource,
    private readonly tokenizerPath?: string,
    /** A chat template in place of the model's own (EngineOptions.chatTemplate). */
    private readonly chatTemplate?: string,
  ) {}

  /** A lower bound on the tokens `text` encodes to (0 when the vocabulary does not say). */
  minTokens(text: string): number {
    if (this.maxPiece === undefined) this.maxPiece = maxPieceBytes(this.tokenizer);
    return this.maxPiece === null ? 0 : minTokens(text, this.maxPiece);
  }

  encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (text.length <= INLINE_CHARS)
      return Promise.resolve(this.tokenizer.encode(text, { addSpecialTokens }));
    return this.onThread((id) => ({ v: 1, type: "encode", id, text, addSpecialTokens }));
  }

  chat(turns: readonly ChatMessage[], variables?: Readonly<Record<string, unknown>>): Promise<number[]> {
    let chars = 0;
    for (const t of turns) chars += t.content.length;
    if (chars <= INLINE_CHARS) {
      try {
        return Promise.resolve(chatPromptIds(this.tokenizer, turns, variables));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.onThread((id) => ({ v: 1, type: "chat", id, turns, ...(variables ? { variables } : {}) }));
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    for (const p of this.pending.values()) p.reject(new Error("the tokenizer thread was closed"));
    this.pending.clear();
    await w?.terminate();
  }

  private async onThread(message: (id: number) => ToTokenizer): Promise<number[]> {
    await this.start();
    const id = this.nextId++;
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage(message(id));
    });
  }

  private start(): Promise<void> {
    if (this.ready) return this.ready;
    const worker = new Worker(new URL("./tokenizer-thread.js", import.meta.url));
    // Idle, the thread must not keep the process alive.
    worker.unref();
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on("message", (m: FromTokenizer) => {
        if (m.type === "ready") resolve();
        else if (m.type === "init_error") reject(new Error(`tokenizer thread: ${m.message}`));
        else this.settle(m);
      });
      worker.on("error", (e) => this.fail(e, reject));
      worker.on("exit", () => this.fail(new Error("the tokenizer thread exited"), reject));
    });
    const init: ToTokenizer = {
      v: 1,
      type: "init",
      source: this.source,
      ...(this.tokenizerPath ? { tokenizerPath: this.tokenizerPath } : {}),
      ...(this.chatTemplate ? { chatTemplate: this.chatTemplate } : {}),
    };
    worker.postMessage(init);
    return this.ready;
  }

  private settle(m: Extract<FromTokenizer, { type: "ids" | "error" }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type === "ids") p.resolve(Array.from(m.ids));
    else
      p.reject(
        m.template
          ? new ChatTemplateError(m.message.replace(/^the chat template rejected the messages: /, ""))
          : new Error(m.message),
      );
  }

  /** The thread died: everything waiting on it fails, and the next large input starts a new one. */
  private fail(e: Error, rejectStart: (e: Error) => void): void {
    rejectStart(e);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.worker = null;
    this.ready = null;
  }
}
