import { MinHeap } from "./heap.js";

/**
 * What the event loop schedules, encoded with its argument (instance or request index) in one
 * heap value. Simultaneous events run in the order of their codes (the heap breaks ties on the
 * smaller value), so these numbers are part of the simulator's results.
 */
export const EventKind = {
  /** A decode instance's step ends (argument: instance). */
  StepEnd: 0,
  /** A prefill instance finishes its batch (argument: prefill instance). */
  PrefillDone: 1,
  /** A prefilled request's KV has reached the decode side (argument: request). */
  KvReady: 2,
  /** An idle decode instance starts a step (argument: instance). */
  StepStart: 3,
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

const SHIFT = 1 << 24;

/** Timed events, earliest first, without allocation per event. */
export class EventQueue {
  private readonly heap = new MinHeap(1024);

  push(time: number, kind: EventKind, arg: number): void {
    this.heap.push(time, kind * SHIFT + arg);
  }

  /** Time of the earliest event (+∞ when none). */
  nextTime(): number {
    return this.heap.peekKey();
  }

  /** Removes the earliest event and returns its code; read it with eventKind/eventArg. */
  pop(): number {
    const code = this.heap.peekVal();
    this.heap.pop();
    return code;
  }
}

export function eventKind(code: number): EventKind {
  return Math.floor(code / SHIFT) as EventKind;
}

export function eventArg(code: number): number {
  return code % SHIFT;
}
