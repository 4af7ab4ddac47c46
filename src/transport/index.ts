/**
 * Framed-tensor transport between processes and hosts: one message format (message.ts), a
 * Channel interface, TCP (across hosts) and shared-memory rings (same host), and an RPC helper.
 */
export type { Channel, CloseInfo, MessageHandler } from "./channel.js";
export { parseControl } from "./control.js";
export {
  ChannelClosedError,
  FrameError,
  HandshakeError,
  RemoteError,
  RequestTimeoutError,
  TransportError,
} from "./errors.js";
export { DEFAULT_LIMITS, type FrameLimits } from "./limits.js";
export {
  copyMessage,
  FLAG_ERROR,
  type Message,
  PROTOCOL_VERSION,
  type ReceivedMessage,
  type TensorArray,
  type WireDType,
  type WireTensor,
} from "./message.js";
export { errorReply, RpcClient, type RpcClientOptions } from "./rpc.js";
export {
  createShmChannel,
  createShmChannelPair,
  openShmChannel,
  ShmChannel,
  type ShmOptions,
} from "./shm-channel.js";
export { type ConnectOptions, connectTcp, type ListenOptions, listenTcp, type TcpServer } from "./tcp.js";
export type { TcpChannel } from "./tcp-channel.js";
