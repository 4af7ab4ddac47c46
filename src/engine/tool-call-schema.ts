import type { ToolCallConstraint } from "./api.js";
import { JSON_OBJECT } from "./json-constraint.js";
import { compileSchema, type SchemaNode } from "./json-schema.js";

const utf8 = new TextEncoder();
/** A string as the bytes between its quotes in JSON. */
const quoted = (s: string) => utf8.encode(JSON.stringify(s).slice(1, -1));

/**
 * The schema of one strict tool call (or, `list`, of a JSON list of them): an object whose "name" is one of the tools' names and whose
 * arguments, under `argsKey`, are a value of the schema of the tool that name names (a switch on
 * the name's enum). Throws SchemaError, naming the tool, where a tool's parameters do not compile.
 */
export function toolCallNode(
  c: ToolCallConstraint,
  cases: readonly SchemaNode[] = toolArgNodes(c),
): SchemaNode {
  const call: SchemaNode = {
    kind: "object",
    props: [
      {
        key: quoted("name"),
        node: { kind: "string", enum: c.tools.map((t) => quoted(t.name)) },
        required: true,
      },
      { key: quoted(c.argsKey), node: { kind: "switch", cases }, required: true },
    ],
    extra: null,
  };
  // Mistral's list form: every call of the reply in one JSON list.
  return c.list ? { kind: "array", items: call, min: 1, max: Number.POSITIVE_INFINITY } : call;
}

/** Each tool's arguments: its parameters schema where it is strict, any object where not. */
export function toolArgNodes(c: ToolCallConstraint): SchemaNode[] {
  return c.tools.map((t) => (t.parameters == null ? JSON_OBJECT : compileSchema(t.parameters)));
}
