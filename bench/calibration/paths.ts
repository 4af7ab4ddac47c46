import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file runs from dist/bench/calibration). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** Generated calibration models (gitignored). */
export const CACHE_ROOT = path.join(REPO_ROOT, ".lamina-cache");
export const RESULTS_DIR = path.join(REPO_ROOT, "bench", "results");
export const PROFILE_FILE = path.join(RESULTS_DIR, "calibration-profile.json");
