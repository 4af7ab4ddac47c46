import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "./types.js";

/**
 * A Hugging Face chat template compiled once and rendered per request with the variables
 * transformers passes: messages, add_generation_prompt and the special-token strings.
 * raise_exception (and strftime_now) are globals of @huggingface/jinja itself, and passing our own
 * raise_exception would throw "Variable already declared", so we rely on the library's.
 */
export class ChatTemplate {
  private readonly template: Template;
  /** The Jinja text, as given. */
  readonly source: string;

  /**
   * @param source the Jinja text
   * @param origin where it came from, for error messages (a file name)
   * @param specialTokens bos_token, eos_token, … as strings (absent ones are left undefined)
   */
  constructor(
    source: string,
    private readonly origin: string,
    private readonly specialTokens: Readonly<Record<string, string>>,
  ) {
    this.source = source;
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new Error(`chat template in ${origin} does not parse: ${(err as Error).message}`);
    }
  }

  render(
    messages: readonly ChatMessage[],
    addGenerationPrompt: boolean,
    variables: Readonly<Record<string, unknown>> = {},
  ): string {
    try {
      return this.template.render({
        ...variables,
        ...this.specialTokens,
        // Plain copies: templates index them like Python dicts and must not see our objects.
        messages: messages.map(templateMessage),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new Error(`chat template in ${this.origin} failed: ${(err as Error).message}`);
    }
  }
}

/** A plain copy of a turn with only the fields it has (templates test `is defined`). */
function templateMessage(m: ChatMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role, content: m.content };
  if (m.tool_calls) out.tool_calls = m.tool_calls;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.name !== undefined) out.name = m.name;
  return out;
}

/**
 * tokenizer_config.json's chat_template is a string, or a list of {name, template} (transformers
 * then uses the one named "default"). Returns null when there is none.
 */
export function selectChatTemplate(raw: unknown, origin: string): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === "string") return raw;
  if (Array.isArray(raw)) {
    const named = raw as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t && t.name === "default");
    if (!chosen) {
      const names = named.map((t) => String(t?.name)).join(", ");
      throw new Error(`${origin}: chat_template lists templates (${names}) but none is named "default"`);
    }
    if (typeof chosen.template !== "string")
      throw new Error(`${origin}: chat template "default" is not a string`);
    return chosen.template;
  }
  throw new Error(`${origin}: chat_template must be a string or a list of {name, template}`);
}
