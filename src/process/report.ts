// The report pipe: how the child talks to the agent without running any JS worth the name.
//
// The child writes fixed-size binary records into a pipe opened with O_CLOEXEC. A record is 48
// bytes, well under PIPE_BUF (4096), so each write is atomic even when two processes (the child
// and, after a second fork, the grandchild) share the pipe. When execve succeeds the kernel closes
// the child's end, and the agent reads EOF: that is how "exec worked" is told apart from a failure.
//
//   offset  size  field
//   0       4     step index (i32)
//   4       4     record type (i32, below)
//   8       8     result (f64: a pid, a return value, or -errno)
//   16      16    struct timespec before the call (CLOCK_MONOTONIC), only with --trace
//   32      16    struct timespec after the call, only with --trace
export const RECORD_SIZE = 48;

export const enum RecordType {
  Done = 1, // a step returned (traced runs only)
  Failed = 2, // a step failed: result holds -errno; the child exits next
  Sync = 3, // a "sync" step is waiting for the agent's answer on the go pipe
  Forked = 4, // the parent side of a "fork" step: result holds the new pid
  ExecBegin = 5, // about to call execve (traced runs only); EOF follows if it works
  Detached = 6, // a "hold" step: setup is done, the agent may go; the child reports nothing more
}

export interface Record {
  index: number;
  type: RecordType;
  result: number;
  /** Nanoseconds on CLOCK_MONOTONIC; 0 when the run is not traced. */
  startNs: number;
  endNs: number;
}

export function decodeRecords(bytes: Uint8Array): Record[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Record[] = [];
  for (let off = 0; off + RECORD_SIZE <= bytes.byteLength; off += RECORD_SIZE) {
    const ts = (at: number) => Number(view.getBigInt64(at, true)) * 1e9 + Number(view.getBigInt64(at + 8, true));
    records.push({
      index: view.getInt32(off, true),
      type: view.getInt32(off + 4, true) as RecordType,
      result: view.getFloat64(off + 8, true),
      startNs: ts(off + 16),
      endNs: ts(off + 32),
    });
  }
  return records;
}
