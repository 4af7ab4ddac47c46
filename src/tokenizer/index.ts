export { BYTE_BOS_ID, BYTE_EOS_ID, BYTE_VOCAB_SIZE, createByteTokenizer } from "./byte-tokenizer.js";
export { ChatTemplate } from "./chat-template.js";
export { type DetokenizerOptions, IncrementalDetokenizer } from "./detokenizer.js";
export { TokenizerFileError } from "./files.js";
export { loadHfTokenizer } from "./hf-tokenizer.js";
export { loadLlama2cTokenizer } from "./llama2c-tokenizer.js";
export type { ChatMessage, DecodeOptions, EncodeOptions, Tokenizer, TokenPieces } from "./types.js";
