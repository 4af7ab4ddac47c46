/**
 * HOST:PORT as the CLI and the placements take it (an IPv6 host in brackets, which are dropped),
 * or null when it is not of that form or the port is past 65535. Port 0 is returned as given:
 * whether it means "pick one" is the caller's to say.
 */
export function parseHostPort(value: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65535) return null;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}
