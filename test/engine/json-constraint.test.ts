// JSON mode's automaton and the constrained draw: every prefix of a JSON object (as JSON.stringify
// writes one, indented or not, with escapes, unicode and every number form) is accepted and only
// the whole is complete; what JSON.parse refuses, or is not an object, is refused by the byte it
// goes wrong at; the automaton never calls complete a text JSON.parse refuses (random edits); and
// the sampler draws the allowed token a mask would, by refusals and by its whole-vocabulary pass.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SamplingParams } from "../../src/engine/api.js";
import {
  acceptToken,
  advanceJson,
  allowedTokens,
  JSON_OBJECT,
  type JsonState,
  jsonComplete,
  jsonStart,
} from "../../src/engine/json-constraint.js";

const JSON_START = jsonStart(JSON_OBJECT);

import { Rng } from "../../src/engine/rng.js";
import { Sampler, type SamplingState } from "../../src/engine/sampler.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { toolCallNode } from "../../src/engine/tool-call-schema.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { tokenizerDir } from "../tokenizer/fixtures.js";

const utf8 = new TextEncoder();

/** The state after each byte of `text`, or the index of the first byte refused. */
function run(text: string): { state: JsonState } | { refusedAt: number } {
  const bytes = utf8.encode(text);
  let s: JsonState = JSON_START;
  for (let i = 0; i < bytes.length; i++) {
    const next = advanceJson(s, bytes.subarray(i, i + 1));
    if (!next) return { refusedAt: i };
    s = next;
  }
  return { state: s };
}

const complete = (text: string) => {
  const r = run(text);
  return "state" in r && jsonComplete(r.state);
};

describe("JSON mode's automaton", () => {
  const objects: unknown[] = [
    {},
    { a: 1 },
    { 'k"e\\y': "v\n\t\u0001 ü 漢字 😀", n: [-0, 0.5, -12.25e-3, 1e21, 3], t: true, f: false, z: null },
    { nested: { deep: [[], [{}], [1, [2, [3]]]], s: "" }, arr: [{ x: "]" }, "}", "{"] },
  ];

  it("accepts every prefix of an object and calls only the whole complete", () => {
    for (const o of objects) {
      for (const text of [
        JSON.stringify(o),
        JSON.stringify(o, null, 2),
        ` \n${JSON.stringify(o, null, "\t")}`,
      ]) {
        const bytes = utf8.encode(text);
        let s: JsonState = JSON_START;
        const closedAt = text.trimEnd().length;
        for (let i = 0; i < bytes.length; i++) {
          const next = advanceJson(s, bytes.subarray(i, i + 1));
          assert.ok(next, `${JSON.stringify(text)} refused at byte ${i}`);
          s = next;
        }
        assert.ok(jsonComplete(s), JSON.stringify(text));
        assert.ok(!complete(text.slice(0, closedAt - 1)), "one byte short is not complete");
      }
    }
    assert.ok(complete('{"a":"\\u00e9\\/\\b"}'));
  });

  it("refuses what JSON.parse refuses, or what is not an object, at the byte that goes wrong", () => {
    const cases: [string, number][] = [
      ["[1]", 0],
      ['"s"', 0],
      ["1", 0],
      ["{,}", 1],
      ['{"a" 1}', 5],
      ['{"a":01}', 6],
      ['{"a":1,}', 7],
      ['{"a":[1,]}', 8],
      ['{"a":1.}', 7],
      ['{"a":-}', 6],
      ['{"a":1e}', 7],
      ['{"a":tru}', 8],
      ['{"a":"\\x"}', 7],
      ['{"a":"\\u12g4"}', 10],
      ['{"a":"line\nbreak"}', 10],
      ['{"a":1]', 6],
      ['{"a":1}}', 7],
      ['{"a":1} x', 7],
      ["{'a':1}", 1],
    ];
    for (const [text, at] of cases) assert.deepEqual(run(text), { refusedAt: at }, JSON.stringify(text));
  });

  it("bounds a run of whitespace, before the object more tightly, after it to none", () => {
    assert.ok("state" in run(`{${" ".repeat(24)}}`));
    assert.deepEqual(run(`{${" ".repeat(25)}}`), { refusedAt: 25 });
    assert.ok("state" in run(`{"a":\n${" ".repeat(23)}1}`));
    assert.ok("state" in run(" \n{}"));
    assert.deepEqual(run("   {}"), { refusedAt: 2 });
    assert.deepEqual(run("{} "), { refusedAt: 2 });
  });

  it("never calls complete a text JSON.parse refuses (random edits of valid objects)", () => {
    const rng = new Rng(7);
    const alphabet = '{}[]",:0123456789-+.eE \\nu"abtrfl';
    let checked = 0;
    for (let n = 0; n < 4000; n++) {
      const base = JSON.stringify(objects[n % objects.length]);
      const i = Math.floor(rng.next() * base.length);
      const ch = alphabet[Math.floor(rng.next() * alphabet.length)]!;
      const kind = n % 3;
      const text =
        kind === 0
          ? base.slice(0, i) + ch + base.slice(i + 1)
          : kind === 1
            ? base.slice(0, i) + ch + base.slice(i)
            : base.slice(0, i) + base.slice(i + 1);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const isObject = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed);
      assert.equal(complete(text), isObject, JSON.stringify(text));
      checked++;
    }
    assert.equal(checked, 4000);
  });
});

describe("the constrained draw", () => {
  const V = 50;
  const state = (p: Partial<Parameters<typeof resolveSamplingParams>[0]>, seed = 1): SamplingState => ({
    params: resolveSamplingParams(p) as SamplingParams,
    rng: new Rng(seed),
    promptTokens: [],
    outputCounts: new Map(),
  });
  const logitsOf = () => Float32Array.from({ length: V }, (_, t) => -t / 4);

  it("greedy takes the most likely allowed token, past more refusals than it checks one by one", () => {
    const sampler = new Sampler(V);
    for (const allowedSet of [[3, 7], [40, 45], [49]]) {
      const asked: number[] = [];
      const t = sampler.sampleAllowed(logitsOf(), 0, state({ temperature: 0 }), (x) => {
        asked.push(x);
        return allowedSet.includes(x);
      });
      assert.equal(t, allowedSet[0], `allowed ${allowedSet}`);
      // Token 49 is the least likely: found by the pass over the whole vocabulary.
      if (allowedSet[0] === 49) assert.ok(asked.length >= V, `${asked.length} checks`);
    }
    assert.equal(
      new Sampler(V).sampleAllowed(logitsOf(), 0, state({ temperature: 0 }), () => false),
      -1,
    );
  });

  it("a sampled draw follows the masked distribution", () => {
    // Allowed: tokens 2, 5 and 30, whose softmax shares renormalised are the expected frequencies.
    const allowed = new Set([2, 5, 30]);
    const l = logitsOf();
    const w = [...allowed].map((t) => Math.exp(l[t]!));
    const z = w.reduce((a, b) => a + b);
    const counts = new Map<number, number>();
    const sampler = new Sampler(V);
    const st = state({ temperature: 1 }, 3);
    const draws = 20000;
    for (let i = 0; i < draws; i++) {
      const t = sampler.sampleAllowed(logitsOf(), 0, st, (x) => allowed.has(x));
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    assert.deepEqual(
      [...counts.keys()].sort((a, b) => a - b),
      [2, 5, 30],
    );
    [...allowed].forEach((t, i) => {
      const want = w[i]! / z;
      const got = counts.get(t)! / draws;
      assert.ok(Math.abs(got - want) < 0.015, `token ${t}: ${got} vs ${want}`);
    });
  });
});

describe("the first-byte check before the automaton", () => {
  it("allows exactly the tokens the automaton accepts, over Qwen3's whole vocabulary", () => {
    const tok = loadHfTokenizer(tokenizerDir("tokenizer-qwen3"));
    const pieces = tok.pieces!;
    const ends = new Uint8Array(tok.vocabSize);
    for (const t of tok.eosTokenIds) ends[t] = 1;
    const isEnd = (t: number) => ends[t] === 1;
    const states = ["", '{"na', '{"name"', '{"a": [1, 2', '{"a": {}', '{"a": 1}'].map((t) => {
      const s = advanceJson(JSON_START, new TextEncoder().encode(t));
      assert.ok(s, t);
      return s;
    });
    for (const s of states) {
      const allowed = allowedTokens(s, pieces, tok.vocabSize, ends);
      let count = 0;
      for (let t = 0; t < tok.vocabSize; t++) {
        const want = acceptToken(s, t, pieces, isEnd) !== null;
        if (allowed(t) !== want)
          assert.fail(`token ${t} (${JSON.stringify(tok.decode([t]))}): ${allowed(t)} vs ${want}`);
        if (want) count++;
      }
      assert.ok(count > 0);
    }
  });
});

describe("a strict tool call's automaton (tool-call-schema.ts)", () => {
  const node = toolCallNode({
    tools: [
      { name: "a", parameters: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] } },
      { name: "b", parameters: { type: "object", properties: { y: { enum: ["p", "q"] } }, required: ["y"] } },
      { name: "c", parameters: null },
    ],
    argsKey: "arguments",
    list: false,
    named: null,
    open: null,
    close: null,
    opened: null,
  });
  const reads = (text: string) => advanceJson(jsonStart(node), utf8.encode(text));

  it("takes each tool's arguments under that tool's schema, picked by the name written", () => {
    for (const call of [
      { name: "a", arguments: { x: 3 } },
      { name: "b", arguments: { y: "q" } },
      { name: "c", arguments: { anything: [1, "two"] } },
    ]) {
      const text = JSON.stringify(call);
      for (let i = 0; i < text.length; i++) assert.ok(reads(text.slice(0, i)), `${text} to ${i}`);
      assert.ok(jsonComplete(reads(text)!), text);
    }
  });

  it("refuses another tool's arguments, a name no tool has, and a missing key", () => {
    assert.equal(reads('{"name": "a", "arguments": {"y'), null);
    assert.equal(reads('{"name": "b", "arguments": {"x'), null);
    assert.equal(reads('{"name": "b", "arguments": {"y": "r'), null);
    assert.equal(reads('{"name": "d'), null);
    assert.equal(reads('{"arguments'), null, "the name comes first");
    assert.equal(reads('{"name": "a"}'), null, "the arguments are required");
  });

  it("resolveSamplingParams refuses a malformed constraint and a schema it cannot draw", () => {
    const base = {
      argsKey: "arguments" as const,
      list: false,
      named: null,
      open: 5,
      close: 6,
      opened: null,
    };
    const tools = [{ name: "a", parameters: null }];
    assert.doesNotThrow(() => resolveSamplingParams({ toolCalls: { ...base, tools } }));
    assert.throws(() => resolveSamplingParams({ toolCalls: { ...base, tools: [] } }), /strict tool calls/);
    assert.throws(
      () => resolveSamplingParams({ toolCalls: { ...base, tools, open: -1 } }),
      /strict tool calls/,
    );
    assert.throws(
      () =>
        resolveSamplingParams({
          toolCalls: { ...base, tools: [{ name: "a", parameters: { pattern: "x" } }] },
        }),
      /strict tools: .*pattern/,
    );
  });
});
