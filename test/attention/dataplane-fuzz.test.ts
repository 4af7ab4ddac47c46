// The attention worker's native data plane under libFuzzer: hostile postings into its segment
// (test/helpers/libfuzzer.ts runs the target for a bounded time).
import { describe } from "node:test";
import { fuzzTarget } from "../helpers/libfuzzer.js";

describe("native data plane under libFuzzer: the shared-memory segment", () => {
  fuzzTarget("dataplane", "postings into a worker's segment");
});
