/**
 * The far side of the transport benchmark's native limits (forked by transport.ts): the echo half
 * of a spin-only shared-memory ping-pong, or of a blocking-socket one over loopback TCP.
 *   shm NAME BYTES ITERATIONS   open the segment, echo ITERATIONS round trips of BYTES
 *   tcp BYTES ITERATIONS        listen on loopback, send the port to the parent, echo
 */
import { shmNative } from "../../src/transport/shm-native.js";

const [mode, ...rest] = process.argv.slice(2);
const native = shmNative();
if (mode === "shm") {
  const [name, bytes, iterations] = rest;
  const buffer = native.open(name!);
  process.send?.({ ready: true });
  native.pingPongEcho(buffer, 0, Number(bytes), Number(iterations));
} else {
  const [bytes, iterations] = rest;
  const { fd, port } = native.tcpListen();
  process.send?.({ port });
  native.tcpEcho(fd, Number(bytes), Number(iterations));
}
process.exit(0);
