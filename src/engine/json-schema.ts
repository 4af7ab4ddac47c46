/**
 * The JSON Schema subset structured outputs take (response_format json_schema), compiled into the
 * nodes json-schema-constraint.ts walks: type (one or a list), properties / required /
 * additionalProperties, items / minItems / maxItems, enum, const, anyOf / oneOf, $ref into $defs
 * or definitions, and the annotations (title, description, default, examples, format, $schema)
 * that constrain nothing. A keyword that would constrain what this subset cannot (pattern,
 * minimum, minLength, ...) is refused by name rather than ignored.
 *
 * What the constraint draws always satisfies the schema, but not every instance it allows: an
 * object's declared properties come in their declared order (each optional one may be left out),
 * and keys other than the declared ones are written only where an object declares none.
 */

export type SchemaNode =
  | { readonly kind: "any" }
  /** enum: the allowed strings as the bytes between their quotes (JSON-escaped). */
  | { readonly kind: "string"; readonly enum: readonly Uint8Array[] | null }
  | { readonly kind: "number"; readonly integer: boolean }
  /** Whole JSON texts allowed as they are: true, false, null, and enum/const values that are not strings. */
  | { readonly kind: "literal"; readonly texts: readonly Uint8Array[] }
  | {
      readonly kind: "object";
      readonly props: readonly SchemaProp[];
      /** Values of undeclared keys, where the object declares no properties; null: none allowed. */
      readonly extra: SchemaNode | null;
    }
  | { readonly kind: "array"; readonly items: SchemaNode; readonly min: number; readonly max: number }
  /** Alternatives told apart by their first byte. */
  | { readonly kind: "union"; readonly options: readonly SchemaNode[] }
  /**
   * A property's value picked by the enum value an earlier property of the same object took:
   * cases[i] where that enum's i-th string was written (tool calls: the arguments of the tool the
   * name names; built by tool-call-schema.ts, never compiled from a request's schema).
   */
  | { readonly kind: "switch"; readonly cases: readonly SchemaNode[] }
  | { readonly kind: "ref"; readonly resolve: () => SchemaNode };

export interface SchemaProp {
  /** The key as the bytes between its quotes. */
  readonly key: Uint8Array;
  readonly node: SchemaNode;
  readonly required: boolean;
}

export class SchemaError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = "SchemaError";
  }
}

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "format",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
  "strict",
]);
const KNOWN = new Set([
  ...ANNOTATIONS,
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "$ref",
  "$defs",
  "definitions",
]);

/** Levels of nesting a schema may have (its path's parts). */
const MAX_DEPTH = 64;

const utf8 = new TextEncoder();
/** A string's JSON text without its quotes, as bytes. */
const quoted = (s: string) => utf8.encode(JSON.stringify(s).slice(1, -1));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Compiles a schema; errors name the path of the part they refuse. */
export function compileSchema(schema: unknown): SchemaNode {
  if (!isObject(schema)) throw new SchemaError("schema", "must be an object");
  const defs: Record<string, unknown> = {
    ...(isObject(schema.definitions) ? schema.definitions : {}),
    ...(isObject(schema.$defs) ? schema.$defs : {}),
  };
  const compiled = new Map<string, SchemaNode>();
  const c = new Compiler(defs, compiled);
  const root = c.node(schema, "schema");
  c.checkRefs();
  c.checkUnions();
  return root;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class Compiler {
  private readonly pendingRefs: { name: string; path: string }[] = [];
  private readonly unions: { options: SchemaNode[]; path: string }[] = [];

  constructor(
    private readonly defs: Record<string, unknown>,
    private readonly compiled: Map<string, SchemaNode>,
  ) {}

  node(s: unknown, path: string): SchemaNode {
    if (path.split(".").length > MAX_DEPTH)
      throw new SchemaError(path, `nests deeper than ${MAX_DEPTH} levels`);
    if (s === true) return { kind: "any" };
    if (!isObject(s)) throw new SchemaError(path, "must be a schema object");
    for (const k of Object.keys(s))
      if (!KNOWN.has(k))
        throw new SchemaError(
          path,
          `"${k}" is not supported (its constraint cannot be drawn by this server)`,
        );
    if (typeof s.$ref === "string") return this.ref(s.$ref, path);
    if (s.const !== undefined) return this.values([s.const as Json], path);
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0)
        throw new SchemaError(`${path}.enum`, "must be a non-empty array");
      return this.values(s.enum as Json[], `${path}.enum`);
    }
    const alternatives = s.anyOf ?? s.oneOf;
    if (alternatives !== undefined) {
      const key = s.anyOf !== undefined ? "anyOf" : "oneOf";
      if (!Array.isArray(alternatives) || alternatives.length === 0)
        throw new SchemaError(`${path}.${key}`, "must be a non-empty array");
      return this.union(
        alternatives.map((a, i) => this.node(a, `${path}.${key}[${i}]`)),
        `${path}.${key}`,
      );
    }
    const type = s.type;
    if (Array.isArray(type))
      return this.union(
        type.map((t, i) => this.typed(s, t, `${path}.type[${i}]`, path)),
        `${path}.type`,
      );
    if (type === undefined) {
      if (s.properties !== undefined || s.additionalProperties !== undefined)
        return this.typed(s, "object", path, path);
      if (s.items !== undefined) return this.typed(s, "array", path, path);
      return { kind: "any" };
    }
    return this.typed(s, type, `${path}.type`, path);
  }

  private typed(s: Record<string, unknown>, type: unknown, typePath: string, path: string): SchemaNode {
    switch (type) {
      case "string":
        return { kind: "string", enum: null };
      case "number":
      case "integer":
        return { kind: "number", integer: type === "integer" };
      case "boolean":
        return { kind: "literal", texts: [utf8.encode("true"), utf8.encode("false")] };
      case "null":
        return { kind: "literal", texts: [utf8.encode("null")] };
      case "object":
        return this.object(s, path);
      case "array": {
        const min = count(s.minItems, `${path}.minItems`, 0);
        const max = count(s.maxItems, `${path}.maxItems`, Number.POSITIVE_INFINITY);
        if (min > max) throw new SchemaError(path, `minItems ${min} exceeds maxItems ${max}`);
        const items =
          s.items === undefined ? ({ kind: "any" } as const) : this.node(s.items, `${path}.items`);
        return { kind: "array", items, min, max };
      }
      default:
        throw new SchemaError(typePath, `type ${JSON.stringify(type)} is not a JSON Schema type`);
    }
  }

  private object(s: Record<string, unknown>, path: string): SchemaNode {
    const props = s.properties === undefined ? {} : s.properties;
    if (!isObject(props)) throw new SchemaError(`${path}.properties`, "must be an object");
    const required = s.required === undefined ? [] : s.required;
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string"))
      throw new SchemaError(`${path}.required`, "must be an array of property names");
    for (const r of required)
      if (!(r in props))
        throw new SchemaError(`${path}.required`, `names "${r}", which is not among the properties`);
    const list = Object.entries(props).map(([key, p]) => ({
      key: quoted(key),
      node: this.node(p, `${path}.properties.${key}`),
      required: required.includes(key),
    }));
    const ap = s.additionalProperties;
    const extra =
      list.length > 0 || ap === false
        ? null
        : ap === undefined || ap === true
          ? ({ kind: "any" } as const)
          : this.node(ap, `${path}.additionalProperties`);
    return { kind: "object", props: list, extra };
  }

  private ref(ref: string, path: string): SchemaNode {
    const m = /^#\/(?:\$defs|definitions)\/(.+)$/.exec(ref);
    if (!m) throw new SchemaError(`${path}.$ref`, `"${ref}" is not a reference into $defs or definitions`);
    const name = m[1]!;
    this.pendingRefs.push({ name, path: `${path}.$ref` });
    return {
      kind: "ref",
      resolve: () => {
        let n = this.compiled.get(name);
        if (!n) {
          n = this.node(this.defs[name], `$defs.${name}`);
          this.compiled.set(name, n);
        }
        return n;
      },
    };
  }

  /**
   * Every reference names a definition, each definition compiles (refs resolve lazily later), and
   * no chain of references comes back to itself before reaching a schema.
   */
  checkRefs(): void {
    for (let i = 0; i < this.pendingRefs.length; i++) {
      const { name, path } = this.pendingRefs[i]!;
      if (!(name in this.defs)) throw new SchemaError(path, `names "${name}", which is not defined`);
      if (!this.compiled.has(name)) this.compiled.set(name, this.node(this.defs[name], `$defs.${name}`));
    }
    for (const [name, node] of this.compiled) {
      let n = node;
      for (let hops = 0; n.kind === "ref"; hops++) {
        if (hops > this.compiled.size)
          throw new SchemaError(`$defs.${name}`, "refers to itself through references alone");
        n = n.resolve();
      }
    }
  }

  /** enum / const: strings as a string enum, everything else as whole JSON texts. */
  values(values: Json[], path: string): SchemaNode {
    const strings = values.filter((v): v is string => typeof v === "string").map(quoted);
    const texts = values.filter((v) => typeof v !== "string").map((v) => utf8.encode(JSON.stringify(v)));
    const options: SchemaNode[] = [];
    if (strings.length > 0) options.push({ kind: "string", enum: strings });
    if (texts.length > 0) options.push({ kind: "literal", texts });
    return options.length === 1 ? options[0]! : this.union(options, path);
  }

  /** Alternatives, checked once every definition is compiled to start with different bytes. */
  union(options: SchemaNode[], path: string): SchemaNode {
    const flat = options.flatMap((o) => (o.kind === "union" ? o.options : [o]));
    if (flat.length === 1) return flat[0]!;
    if (flat.some((o) => o.kind === "any")) return { kind: "any" };
    this.unions.push({ options: flat, path });
    return { kind: "union", options: flat };
  }

  /** The constraint picks an alternative by its first byte, so no two may share one. */
  checkUnions(): void {
    for (const { options, path } of this.unions) {
      const seen = new Map<number, number>();
      options.forEach((o, i) => {
        for (const b of firstBytes(o)) {
          const j = seen.get(b);
          if (j !== undefined)
            throw new SchemaError(
              path,
              `alternatives ${j} and ${i} can both start with ${JSON.stringify(String.fromCharCode(b))}; this server tells alternatives apart by their first character`,
            );
          seen.set(b, i);
        }
      });
    }
  }
}

function count(v: unknown, path: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
    throw new SchemaError(path, "must be a non-negative integer");
  return v;
}

/** The bytes a value of `n` can start with (refs resolved; a reference cycle with no byte between is refused). */
export function firstBytes(n: SchemaNode, depth = 0): ReadonlySet<number> {
  const known = firstByteSets.get(n);
  if (known) return known;
  if (depth > 64) throw new SchemaError("schema", "a reference cycle reaches no value");
  const set = firstBytesOf(n, depth);
  firstByteSets.set(n, set);
  return set;
}

/** firstBytes, worked out once a node (the constraint asks it for every byte a union starts with). */
const firstByteSets = new WeakMap<SchemaNode, ReadonlySet<number>>();

function firstBytesOf(n: SchemaNode, depth: number): ReadonlySet<number> {
  switch (n.kind) {
    case "any":
      return new Set([0x22, 0x7b, 0x5b, 0x2d, ...range(0x30, 0x39), 0x74, 0x66, 0x6e]);
    case "string":
      return new Set([0x22]);
    case "number":
      return new Set([0x2d, ...range(0x30, 0x39)]);
    case "literal":
      return new Set(n.texts.map((t) => t[0]!));
    case "object":
      return new Set([0x7b]);
    case "array":
      return new Set([0x5b]);
    case "union":
      return new Set(n.options.flatMap((o) => [...firstBytes(o, depth + 1)]));
    case "switch":
      return new Set(n.cases.flatMap((o) => [...firstBytes(o, depth + 1)]));
    case "ref":
      return firstBytes(n.resolve(), depth + 1);
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}
