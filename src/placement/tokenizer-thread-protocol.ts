import type { ModelSource } from "../model/types.js";
import type { ChatMessage } from "../tokenizer/types.js";

/** Messages between the HTTP thread and the tokenizer thread; versioned like every boundary. */
export const TOKENIZER_PROTOCOL_VERSION = 1;

export type ToTokenizer =
  | {
      readonly v: 1;
      readonly type: "init";
      readonly source: ModelSource;
      readonly tokenizerPath?: string;
      /** A chat template in place of the model's own (serve --chat-template). */
      readonly chatTemplate?: string;
    }
  | {
      readonly v: 1;
      readonly type: "encode";
      readonly id: number;
      readonly text: string;
      readonly addSpecialTokens: boolean;
    }
  | {
      readonly v: 1;
      readonly type: "chat";
      readonly id: number;
      readonly turns: readonly ChatMessage[];
      /** More variables for the chat template (request fields such as reasoning_effort). */
      readonly variables?: Readonly<Record<string, unknown>>;
    };

export type FromTokenizer =
  | { readonly v: 1; readonly type: "ready" }
  | { readonly v: 1; readonly type: "init_error"; readonly message: string }
  | { readonly v: 1; readonly type: "ids"; readonly id: number; readonly ids: Int32Array }
  | {
      readonly v: 1;
      readonly type: "error";
      readonly id: number;
      readonly message: string;
      readonly template: boolean;
    };
