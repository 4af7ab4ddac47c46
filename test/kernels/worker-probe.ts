// Runs inside a worker thread (see native-runtime.test.ts): loads the native kernels in this
// thread's own addon instance and multiplies shared-memory inputs into a shared output.
import { parentPort, workerData } from "node:worker_threads";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import type { Tensor } from "../../src/model/tensor.js";

const { w, x, out, nTokens } = workerData as {
  w: Tensor;
  x: Float32Array;
  out: Float32Array;
  nTokens: number;
};
const backend = loadKernelBackend({ backend: "native", threads: 2 }) as NativeBackend;
for (let i = 0; i < 20; i++) backend.matmul(out, x, backend.prepareWeight(w), nTokens);
parentPort!.postMessage({ variant: backend.info().variant });
