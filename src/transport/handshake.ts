/**
 * The TCP handshake: versioned, mutually authenticated by a shared secret with HMAC-SHA256
 * challenge-response. The secret never crosses the wire; each side proves it knows the secret by
 * MACing both fresh nonces with a role-specific label (so a reply cannot be reflected back).
 *
 *   server → HELLO   { protocol, nonce: server nonce }
 *   client → AUTH    { protocol, nonce: client nonce, mac: HMAC(secret, "lamina/1/client" ‖ sn ‖ cn) }
 *   server → AUTH_OK { mac: HMAC(secret, "lamina/1/server" ‖ cn ‖ sn) }      (or GOODBYE { reason })
 *
 * The frame header's version byte is checked first; the `protocol` fields repeat it in the
 * authenticated part so a future version can negotiate.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { PROTOCOL_VERSION } from "./message.js";

/** Message types the transport reserves (0xf0..0xff). */
export const MSG_HELLO = 0xf0;
export const MSG_AUTH = 0xf1;
export const MSG_AUTH_OK = 0xf2;
export const MSG_GOODBYE = 0xf3;
export const MSG_PING = 0xf4;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");

export const HelloSchema = z.object({ protocol: z.number().int(), nonce: hex64 }).strict();
export const AuthSchema = z.object({ protocol: z.number().int(), nonce: hex64, mac: hex64 }).strict();
export const AuthOkSchema = z.object({ mac: hex64 }).strict();
export const GoodbyeSchema = z.object({ reason: z.string().max(1000) }).strict();

export type Secret = string | Uint8Array;

export function checkSecret(secret: Secret | undefined, where: string): Uint8Array {
  if (secret === undefined || secret.length === 0)
    throw new TypeError(`${where}: a non-empty shared secret is required`);
  return typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
}

export function newNonce(): string {
  return randomBytes(32).toString("hex");
}

export function proof(secret: Uint8Array, role: "client" | "server", first: string, second: string): string {
  return createHmac("sha256", secret)
    .update(`lamina/${PROTOCOL_VERSION}/${role}\0${first}\0${second}`)
    .digest("hex");
}

/** Constant-time comparison of two hex MACs of equal, validated length. */
export function proofMatches(expected: string, got: string): boolean {
  const a = Buffer.from(expected, "hex");
  const b = Buffer.from(got, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
