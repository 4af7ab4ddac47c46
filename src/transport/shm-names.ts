/**
 * Names of this process's POSIX shared-memory segments: made unique per process, tagged for the
 * test runner's leak check, and removed at exit if their owner has not removed them already (a
 * mapping stays valid after its name is gone, so a name only ever needs to live until the peer
 * has opened it).
 */
import { randomBytes } from "node:crypto";
import { shmNative } from "./shm-native.js";

const pendingUnlink = new Set<string>();
let exitHookInstalled = false;
let counter = 0;

/**
 * LAMINA_SHM_TAG (letters and digits, starting with a letter) goes into the names after
 * "lamina-": a test runner tags each test file's processes so it can find the segments that one
 * file left behind, and only those.
 */
const TAG = /^[A-Za-z][A-Za-z0-9]{0,31}$/.test(process.env.LAMINA_SHM_TAG ?? "")
  ? `${process.env.LAMINA_SHM_TAG}-`
  : "";

/** A fresh segment name for this process. */
export function newSegmentName(): string {
  return `/lamina-${TAG}${process.pid}-${++counter}-${randomBytes(4).toString("hex")}`;
}

/** Whether `name` looks like one of ours (checked before a name from a peer is opened). */
export function isSegmentName(name: unknown): name is string {
  return typeof name === "string" && /^\/lamina-[\w-]+$/.test(name);
}

/** Removes the name at process exit unless `unlinkSegmentName` does it first. */
export function unlinkAtExit(name: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const n of pendingUnlink) {
        try {
          shmNative().unlink(n);
        } catch {}
      }
    });
  }
  pendingUnlink.add(name);
}

/** Removes the name now (idempotent; a name already gone is fine). */
export function unlinkSegmentName(name: string): void {
  if (!pendingUnlink.delete(name)) return;
  try {
    shmNative().unlink(name);
  } catch {}
}
