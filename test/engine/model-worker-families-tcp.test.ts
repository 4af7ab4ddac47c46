import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe } from "node:test";
import { familiesEqualColocated } from "../helpers/model-worker-families.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-model-worker-families-tcp-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("model workers over the TCP model plane: every model family", () =>
  familiesEqualColocated("tcp", tmp));
