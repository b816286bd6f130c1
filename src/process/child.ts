// The child's side of the setup: run the prepared steps, report over the pipe, exec or _exit.
//
// This code runs in a copy of a multithreaded runtime that has only one thread left. Everything
// here is FFI calls on buffers built before the fork: no allocation-heavy JS, no logging, no
// promises, no await. Every path ends in execve or _exit; the process never returns into the
// agent's code.
//
// Even small allocations are avoided (FFI results are i32 or numbers, never BigInt): a lock that
// another thread of the agent held at the moment of fork() stays locked forever in the copy, and
// an allocation that needs the allocator's slow path would wait on it.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { CLOCK_MONOTONIC } from "../libc/constants.ts";
import { RECORD_SIZE, RecordType } from "./report.ts";
import { exitCodeForFailure } from "./status.ts";
import type { Step } from "./step.ts";

export class ChildRunner {
  private readonly record = new Uint8Array(RECORD_SIZE);
  private readonly view = new DataView(this.record.buffer);
  private readonly recordPtr = ptr(this.record);
  private readonly goByte = new Uint8Array(1);
  private readonly goPtr = ptr(this.goByte);

  constructor(
    readonly steps: readonly Step[],
    /** Write end of the report pipe (O_CLOEXEC); -1 once the agent is gone (after a "hold" step). */
    public reportFd: number,
    /** Read end of the go pipe, where the agent answers "sync" steps (O_CLOEXEC). */
    readonly goFd: number,
    readonly trace: boolean,
  ) {}

  /** Run steps from `from` to the end. Never returns. */
  run(from = 0): never {
    const { steps, trace } = this;
    for (let i = from; i < steps.length; i++) {
      const step = steps[i]!;
      if (step.kind === "sync") {
        this.send(i, RecordType.Sync, 0);
        // One byte back: 0 means go on. Anything else, or EOF (the agent died), means stop.
        if (Number(libc.read(this.goFd, this.goPtr, 1)) !== 1 || this.goByte[0] !== 0) libc._exit(125);
        continue;
      }
      if (step.kind === "hold") {
        // `minic create` ends here: from now on nobody reads the report pipe.
        this.send(i, RecordType.Detached, 0);
        this.reportFd = -1;
      }
      if (trace) {
        libc.clock_gettime(CLOCK_MONOTONIC, this.recordPtr + 16);
        if (step.kind === "exec") this.send(i, RecordType.ExecBegin, 0);
      }
      const result = step.run();
      if (result < 0 && !step.tolerate?.includes(-result)) {
        this.send(i, RecordType.Failed, result);
        libc._exit(exitCodeForFailure(step.kind, -result));
      }
      if (step.kind === "fork" && result > 0) {
        // The parent side of the second fork: hand the new pid to the agent and step aside.
        this.send(i, RecordType.Forked, result);
        libc._exit(0);
      }
      if (trace && step.kind !== "fork") {
        // (the new process of a fork step says nothing: the parent side's Forked record tells it)
        libc.clock_gettime(CLOCK_MONOTONIC, this.recordPtr + 32);
        this.send(i, RecordType.Done, result);
      }
    }
    libc._exit(0); // a plan without an exec step (tests use these) ends here
    throw new Error("unreachable");
  }

  private send(index: number, type: RecordType, result: number): void {
    if (this.reportFd < 0) return;
    this.view.setInt32(0, index, true);
    this.view.setInt32(4, type, true);
    this.view.setFloat64(8, result, true);
    // A short or failed write means the agent is gone: nobody is left to set up for.
    if (Number(libc.write(this.reportFd, this.recordPtr, RECORD_SIZE)) !== RECORD_SIZE) libc._exit(125);
  }
}
