/** Typed transport errors, so callers can tell a broken peer from a bad message of their own. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A frame (received or about to be sent) breaks the format or the configured limits. */
export class FrameError extends TransportError {
  constructor(message: string) {
    super(message, "bad_frame");
  }
}

/** The channel is closed, or the peer went away (closed, crashed, or stopped answering). */
export class ChannelClosedError extends TransportError {
  constructor(readonly reason: string) {
    super(`channel closed: ${reason}`, "channel_closed");
  }
}

/** The handshake failed: wrong secret, wrong protocol version, or no answer in time. */
export class HandshakeError extends TransportError {
  constructor(message: string) {
    super(message, "handshake_failed");
  }
}

/** A request got no response in time. */
export class RequestTimeoutError extends TransportError {
  constructor(
    readonly requestId: number,
    readonly timeoutMs: number,
  ) {
    super(`request ${requestId} got no response within ${timeoutMs} ms`, "timeout");
  }
}

/** The peer answered a request with an error response (FLAG_ERROR). */
export class RemoteError extends TransportError {
  constructor(message: string) {
    super(`peer reported: ${message}`, "remote_error");
  }
}
