// Dependencies point one way. The layers are written down in docs/ARCHITECTURE.md; this test
// fails on an import from a folder to one in the same or a higher layer, and on sim/ importing
// anything but its own files and util/.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import { readSource, sourceFiles } from "./source-tree.js";

/** Top to bottom: a folder may import its own files and folders of strictly lower layers. */
export const LAYERS: readonly (readonly string[])[] = [
  ["cli"],
  ["server", "bench", "sim"],
  ["placement"],
  ["engine", "pd"],
  ["runtime"],
  ["attention"],
  ["transport", "kernels", "graph", "convert"],
  ["model"],
  ["tokenizer"],
  ["util"],
];

/** The simulator answers datacenter questions from catalogs and cost models, never the runtime. */
const SIM_MAY_IMPORT = new Set(["sim", "util"]);

function layerOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i;
}

/** Relative module specifiers a file imports (static, re-exports, dynamic and type-only). */
export function importsOf(source: string, fileName: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier)
      out.push((node.moduleSpecifier as ts.StringLiteral).text);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument))
      out.push((node.argument.literal as ts.StringLiteral).text);
    else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    )
      out.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.filter((s) => s.startsWith("."));
}

/** Every import that crosses folders, as [file, from folder, to folder]. */
function crossings(): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const rel of sourceFiles()) {
    const from = rel.split(path.sep)[0]!;
    for (const spec of importsOf(readSource(rel), rel)) {
      const target = path.normalize(path.join(path.dirname(rel), spec));
      const to = target.split(path.sep)[0]!;
      if (to !== from) out.push([rel, from, to]);
    }
  }
  return out;
}

/** The violations in a list of crossings (exported for the self-check below). */
export function violations(list: readonly [string, string, string][]): string[] {
  const bad: string[] = [];
  for (const [file, from, to] of list) {
    if (from === "sim") {
      if (!SIM_MAY_IMPORT.has(to)) bad.push(`${file}: sim/ imports ${to}/ (runtime code)`);
      continue;
    }
    const a = layerOf(from);
    const b = layerOf(to);
    if (a < 0 || b < 0) bad.push(`${file}: ${a < 0 ? from : to}/ is in no layer`);
    else if (b <= a) bad.push(`${file}: ${from}/ (layer ${a}) imports ${to}/ (layer ${b})`);
  }
  return bad;
}

describe("dependencies point one way", () => {
  it("every src/ folder is in exactly one layer", () => {
    const folders = new Set(sourceFiles().map((f) => f.split(path.sep)[0]!));
    for (const f of folders) {
      assert.equal(LAYERS.filter((l) => l.includes(f)).length, 1, `${f}/`);
    }
  });

  it("no import goes to the same or a higher layer, and sim/ imports no runtime code", () => {
    assert.deepEqual(violations(crossings()), []);
  });

  it("the check finds an upward import, a peer import and sim/ reaching into the runtime", () => {
    assert.deepEqual(
      violations([
        ["engine/x.ts", "engine", "placement"],
        ["engine/y.ts", "engine", "pd"],
        ["sim/z.ts", "sim", "model"],
        ["server/w.ts", "server", "engine"],
      ]),
      [
        "engine/x.ts: engine/ (layer 3) imports placement/ (layer 2)",
        "engine/y.ts: engine/ (layer 3) imports pd/ (layer 3)",
        "sim/z.ts: sim/ imports model/ (runtime code)",
      ],
    );
  });

  it("imports of every form are seen", () => {
    const src = `import a from "./a.js"; import type { B } from "../b/b.js"; export * from "./c.js";
      const d = await import("../d/d.js"); type E = import("../e/e.js").E; import x from "node:fs";`;
    assert.deepEqual(importsOf(src, "f.ts"), ["./a.js", "../b/b.js", "./c.js", "../d/d.js", "../e/e.js"]);
  });
});
