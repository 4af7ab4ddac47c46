/** Progress of a model load, for a CLI bar or a log line. Byte counts; `total` may be 0 when unknown. */
export interface LoadProgress {
  readonly phase: "download" | "weights";
  /** The file being worked on (a repository path when downloading). */
  readonly file: string;
  readonly done: number;
  readonly total: number;
}

export type ProgressCallback = (p: LoadProgress) => void;
