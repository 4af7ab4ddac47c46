import path from "node:path";
import { REPO_ROOT, RESULTS_DIR } from "../common/results.js";

export { REPO_ROOT, RESULTS_DIR };
/** Generated calibration models (gitignored). */
export const CACHE_ROOT = path.join(REPO_ROOT, ".lamina-cache");
export const PROFILE_FILE = path.join(RESULTS_DIR, "calibration-profile.json");
