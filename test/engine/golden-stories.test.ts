import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone, logitsAllPositions } from "../helpers/engine-driver.js";

interface GoldenCase {
  prompt: string;
  prompt_token_ids: number[];
  generated_token_ids: number[];
  top5_logits_at_pos: Record<string, [number, number][]>;
}

const dir = sharedDataPath("models", "stories260K");
const golden = JSON.parse(readFileSync(path.join(dir, "golden_stories260K.json"), "utf8")) as {
  cases: GoldenCase[];
};

// The same weights, two checkpoint formats: both must reproduce the independent implementation.
const sources = [
  { name: "hf/", spec: path.join(dir, "hf") },
  { name: "llama2.c .bin", spec: path.join(dir, "stories260K.bin") },
];

for (const { name: backendName, backend } of engineBackends()) {
  for (const src of sources) {
    describe(`stories260K golden outputs (${src.name}, ${backendName} kernels)`, async () => {
      const model = await loadModel(src.spec);
      golden.cases.forEach((c, i) => {
        it(`case ${i}: greedy tokens equal the golden ids`, async () => {
          const tokens = await generateAlone(
            model,
            backend,
            c.prompt_token_ids,
            c.generated_token_ids.length,
          );
          assert.deepEqual(tokens, c.generated_token_ids);
        });
        it(`case ${i}: top-5 logits within 1e-4`, async () => {
          const seq = [...c.prompt_token_ids, ...c.generated_token_ids];
          const positions = Object.keys(c.top5_logits_at_pos).map(Number);
          const logits = await logitsAllPositions(model, backend, seq.slice(0, Math.max(...positions) + 1));
          for (const pos of positions) {
            for (const [token, value] of c.top5_logits_at_pos[String(pos)]!) {
              const got = logits[pos]![token]!;
              assert.ok(
                Math.abs(got - value) <= 1e-4,
                `pos ${pos} token ${token}: ${got} vs golden ${value}`,
              );
            }
          }
        });
      });
    });
  }
}
