// Structured outputs' schemas: what compiles and what is refused by name (keywords whose
// constraint cannot be drawn, undefined or self-referring $refs, alternatives that start alike,
// nesting past the bound), and the automaton on a pydantic-style schema with $defs, enums,
// integers, bounded arrays, optional and nullable properties, and on a recursive one: instances
// written in the declared order are accepted and whole; wrong order, missing or undeclared keys,
// wrong types and out-of-enum values are refused; random edits never make a text it calls whole
// that JSON.parse refuses or that breaks the schema.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { advanceJson, jsonComplete, jsonStart } from "../../src/engine/json-constraint.js";
import { compileSchema } from "../../src/engine/json-schema.js";
import { Rng } from "../../src/engine/rng.js";

const utf8 = new TextEncoder();

/** Whether `text` is accepted byte by byte, and whole at its end. */
function read(schema: unknown, text: string): "refused" | "partial" | "whole" {
  let s = jsonStart(compileSchema(schema));
  const bytes = utf8.encode(text);
  for (let i = 0; i < bytes.length; i++) {
    const next = advanceJson(s, bytes.subarray(i, i + 1));
    if (!next) return "refused";
    s = next;
  }
  return jsonComplete(s) ? "whole" : "partial";
}

const PERSON = {
  $defs: {
    Address: {
      type: "object",
      title: "Address",
      properties: { city: { type: "string" }, zip: { type: "string", enum: ["75001", "10001"] } },
      required: ["city", "zip"],
      additionalProperties: false,
    },
  },
  type: "object",
  properties: {
    name: { type: "string", description: "full name" },
    age: { type: "integer" },
    score: { type: "number" },
    tags: { type: "array", items: { type: "string" }, maxItems: 2 },
    address: { $ref: "#/$defs/Address" },
    nick: { anyOf: [{ type: "string" }, { type: "null" }] },
    ok: { type: "boolean" },
    kind: { const: 3 },
  },
  required: ["name", "age", "address"],
};

describe("structured outputs' schemas", () => {
  it("refuses by name what the constraint cannot draw", () => {
    const cases: [unknown, RegExp][] = [
      [{ type: "string", pattern: "^a" }, /schema: "pattern" is not supported/],
      [
        { type: "object", properties: { a: { type: "integer", minimum: 0 } } },
        /schema\.properties\.a: "minimum"/,
      ],
      [{ $ref: "#/$defs/Missing" }, /names "Missing", which is not defined/],
      [{ $ref: "http://x/y" }, /not a reference into \$defs or definitions/],
      [
        { $defs: { A: { $ref: "#/$defs/B" }, B: { $ref: "#/$defs/A" } }, $ref: "#/$defs/A" },
        /refers to itself/,
      ],
      [{ anyOf: [{ type: "object" }, { type: "object", properties: {} }] }, /can both start with "\{"/],
      [{ enum: [1, -1, "x"], type: "string" }, null as unknown as RegExp],
      [{ type: "date" }, /type "date" is not a JSON Schema type/],
      [
        { type: "object", properties: { a: {} }, required: ["b"] },
        /names "b", which is not among the properties/,
      ],
      [{ type: "array", minItems: 3, maxItems: 2 }, /minItems 3 exceeds maxItems 2/],
      ["string", /must be an object/],
    ];
    for (const [schema, message] of cases) {
      if (message === null) {
        assert.doesNotThrow(() => compileSchema(schema));
        continue;
      }
      assert.throws(() => compileSchema(schema), message, JSON.stringify(schema));
    }
    let deep: unknown = { type: "string" };
    for (let i = 0; i < 70; i++) deep = { type: "array", items: deep };
    assert.throws(() => compileSchema(deep), /nests deeper than 64 levels/);
  });

  it("accepts instances in the declared order, whole at their end", () => {
    const ok = [
      { name: "Ann", age: 30, address: { city: "Paris", zip: "75001" } },
      {
        name: 'Bo "B" \\ ü',
        age: -2,
        score: 1.5e3,
        tags: ["a", "b"],
        address: { city: "", zip: "10001" },
        nick: null,
        ok: true,
        kind: 3,
      },
      { name: "C", age: 0, tags: [], address: { city: "x", zip: "75001" }, nick: "cc" },
    ];
    for (const o of ok) {
      assert.equal(read(PERSON, JSON.stringify(o)), "whole", JSON.stringify(o));
      assert.equal(read(PERSON, JSON.stringify(o, null, 2)), "whole");
      assert.equal(read(PERSON, JSON.stringify(o).slice(0, -1)), "partial");
    }
  });

  it("refuses what breaks the schema at the byte it goes wrong", () => {
    const bad = [
      '{"age": 1, "name": "A"', // declared order
      '{"name": "A", "address"', // age is required before address
      '{"name": "A", "age": 1, "address": {"city": "P", "zip": "75002"', // zip outside the enum
      '{"name": "A", "age": 1.5', // an integer
      '{"name": "A", "age": 1, "tags": ["a", "b", "c"', // maxItems
      '{"name": "A", "age": 1, "address": {"city": "P", "zip": "75001"}, "nick": 5', // string or null
      '{"name": "A", "age": 1, "address": {"city": "P", "zip": "75001"}, "kind": 4', // const
      '{"name": "A", "age": 1, "address": {"city": "P", "zip": "75001"}, "extra"', // undeclared
      '{"name": "A", "age": 1}', // address missing
    ];
    for (const text of bad) assert.equal(read(PERSON, text), "refused", text);
  });

  it("walks a recursive schema and free-form parts", () => {
    const tree = {
      $defs: {
        Node: {
          type: "object",
          properties: { v: { type: "integer" }, kids: { type: "array", items: { $ref: "#/$defs/Node" } } },
          required: ["v"],
        },
      },
      $ref: "#/$defs/Node",
    };
    assert.equal(
      read(tree, '{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}'),
      "whole",
    );
    assert.equal(read(tree, '{"v": 1, "kids": [{"w": 2}'), "refused");
    const free = { type: "object", properties: { meta: { type: "object" }, any: {} } };
    assert.equal(
      read(free, '{"meta": {"x": [1, {"y": null}], "z": "q"}, "any": [true, 2.5e-3, "s"]}'),
      "whole",
    );
    assert.equal(read({ type: "integer" }, "42"), "whole");
    assert.equal(read({ type: "boolean" }, "fals"), "partial");
    assert.equal(read({ enum: [1, 10] }, "1"), "whole");
    assert.equal(read({ enum: [1, 10] }, "10"), "whole");
    assert.equal(read({ enum: [1, 10] }, "11"), "refused");
  });

  it("never calls whole a text that JSON.parse refuses or that breaks the schema (random edits)", () => {
    const rng = new Rng(5);
    const base = JSON.stringify({
      name: "Ann",
      age: 30,
      tags: ["a"],
      address: { city: "Paris", zip: "75001" },
      nick: null,
    });
    const alphabet = '{}[]",:0123456789-.e \\naAtrufsl';
    for (let n = 0; n < 3000; n++) {
      const i = Math.floor(rng.next() * base.length);
      const ch = alphabet[Math.floor(rng.next() * alphabet.length)]!;
      const text =
        n % 2 === 0 ? base.slice(0, i) + ch + base.slice(i + 1) : base.slice(0, i) + base.slice(i + 1);
      if (read(PERSON, text) !== "whole") continue;
      const v = JSON.parse(text) as Record<string, unknown>;
      assert.equal(typeof v.name, "string", text);
      assert.ok(Number.isInteger(v.age), text);
      const a = v.address as Record<string, unknown>;
      assert.ok(a.zip === "75001" || a.zip === "10001", text);
      assert.equal(typeof a.city, "string", text);
      assert.ok(v.nick === undefined || v.nick === null || typeof v.nick === "string", text);
      for (const k of Object.keys(v)) assert.ok(k in PERSON.properties, text);
    }
  });
});
