import { ConfigError } from "../sim/instances.js";
import { loadTrace, shareGptLike, syntheticTrace, type Trace } from "../sim/trace.js";

const SYNTHETIC_KEYS = ["requests", "rate", "prompt", "output", "sigma", "seed"];

/** A trace spec: azure-conv | azure-code | kimi-conv | FILE | synthetic:k=v,… | sharegpt:N[@rate]. */
export function traceFromSpec(spec: string): Trace {
  if (spec.startsWith("sharegpt:")) return shareGptFromSpec(spec);
  if (spec.startsWith("synthetic:")) return syntheticFromSpec(spec.slice("synthetic:".length));
  return loadTrace(spec);
}

function shareGptFromSpec(spec: string): Trace {
  const m = /^sharegpt:(\d+)(?:@([\d.]+|inf))?$/.exec(spec);
  if (!m) throw new ConfigError(`--trace ${spec}: expected sharegpt:N or sharegpt:N@RATE`);
  return shareGptLike(
    Number(m[1]),
    m[2] === undefined || m[2] === "inf" ? Number.POSITIVE_INFINITY : Number(m[2]),
  );
}

/** requests=N,rate=R,prompt=P,output=O,sigma=S,seed=K, each optional ("inf" allowed). */
function syntheticFromSpec(keyValues: string): Trace {
  const kv = Object.fromEntries(
    keyValues
      .split(",")
      .filter(Boolean)
      .map((p) => p.split("=")),
  ) as Record<string, string>;
  for (const k of Object.keys(kv)) {
    if (!SYNTHETIC_KEYS.includes(k))
      throw new ConfigError(`--trace synthetic: unknown key "${k}" (known: ${SYNTHETIC_KEYS.join(", ")})`);
  }
  const n = (k: string, d: number) => {
    const v = kv[k] === undefined ? d : kv[k] === "inf" ? Number.POSITIVE_INFINITY : Number(kv[k]);
    if (Number.isNaN(v)) throw new ConfigError(`--trace synthetic: ${k} must be a number (got "${kv[k]}")`);
    return v;
  };
  return syntheticTrace({
    requests: n("requests", 1000),
    rate: n("rate", 5),
    meanPrompt: n("prompt", 512),
    meanOutput: n("output", 256),
    sigma: n("sigma", 0.8),
    seed: n("seed", 1),
  });
}
