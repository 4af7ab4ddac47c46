// Functions you can read in one sitting: no function, method or closure in src/ spans 100 lines
// or more (a long one is a sign that it does several jobs that want names of their own).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import ts from "typescript";
import { readSource, sourceFiles } from "./source-tree.js";

const MAX_LINES = 100;

/** Every function-like node's name and line span in a source text. */
export function functionSpans(source: string, fileName: string): { name: string; lines: number }[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = node as ts.Node & { name?: ts.Node };
      const name = named.name ? named.name.getText(sf) : `(anonymous at line ${start + 1})`;
      out.push({ name, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

describe("functions you can read in one sitting", () => {
  it(`every function in src/ is under ${MAX_LINES} lines`, () => {
    const long: string[] = [];
    for (const rel of sourceFiles())
      for (const f of functionSpans(readSource(rel), rel))
        if (f.lines >= MAX_LINES) long.push(`${rel}: ${f.name} (${f.lines} lines)`);
    assert.deepEqual(long, []);
  });

  it("the measure sees methods, arrows and nested closures", () => {
    const body = Array.from({ length: 120 }, (_, i) => `  x += ${i};`).join("\n");
    const src = `class A { m() {\n${body}\n} }\nconst f = () => {\n${body}\n};\nfunction g() { return () => 1; }`;
    const spans = functionSpans(src, "a.ts");
    assert.deepEqual(
      spans.map((s) => [s.name, s.lines >= MAX_LINES]),
      [
        ["m", true],
        ["(anonymous at line 123)", true],
        ["g", false],
        ["(anonymous at line 245)", false],
      ],
    );
  });
});
