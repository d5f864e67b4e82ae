// The preboot guest's serial console: progress lines, and one secret line read with echo off.
import { closeSync, openSync, writeSync } from "node:fs";
import { isatty, ReadStream } from "node:tty";
import { Readable } from "node:stream";
import { createReadStream } from "node:fs";

/** The longest passphrase accepted (cryptsetup's own limit for a typed one is 512 bytes). */
export const MAX_SECRET = 512;

export class PrebootConsole {
  private readonly inFd: number;
  private readonly outFd: number;
  private readonly input: Readable;

  constructor(readonly path: string) {
    this.inFd = openSync(path, "r");
    this.outFd = openSync(path, "w");
    this.input = isatty(this.inFd) ? new ReadStream(this.inFd) : createReadStream("", { fd: this.inFd, autoClose: false });
    this.input.pause();
  }

  /** Writes text as is (in raw mode the tty adds no carriage returns: lines end in \r\n). */
  write(text: string): void {
    writeSync(this.outFd, text);
  }

  /** One progress line, `preboot: ` first. */
  log(message: string): void {
    this.write(`preboot: ${message}\r\n`);
  }

  /**
   * Prints `prompt` and reads one line with echo off (the tty in raw mode). Backspace erases,
   * Ctrl-U starts over, Ctrl-C or Ctrl-D ends the line empty. Bytes typed after the end of the
   * line are dropped. The bytes read never pass through a string: the caller gets a Buffer
   * to fill with zeros after use.
   */
  readSecret(prompt: string): Promise<Buffer> {
    const tty = this.input instanceof ReadStream ? this.input : undefined;
    tty?.setRawMode(true);
    this.write(prompt);
    const buf = Buffer.alloc(MAX_SECRET);
    let n = 0;
    return new Promise<Buffer>((resolve, reject) => {
      const finish = (err?: Error) => {
        this.input.off("data", onData);
        this.input.off("end", onEnd);
        this.input.off("error", onError);
        this.input.pause();
        tty?.setRawMode(false);
        this.write("\r\n");
        const line = Buffer.from(buf.subarray(0, n));
        buf.fill(0);
        if (err) {
          line.fill(0);
          reject(err);
        } else resolve(line);
      };
      const onData = (chunk: Buffer) => {
        let done = false;
        for (const b of chunk) {
          if (b === 0x0d || b === 0x0a) done = true;
          else if (b === 0x03 || b === 0x04) {
            n = 0;
            done = true;
          } else if (b === 0x7f || b === 0x08) n = Math.max(0, n - 1);
          else if (b === 0x15) n = 0;
          else if (n < buf.length) buf[n++] = b;
          if (done) break;
        }
        chunk.fill(0);
        if (done) finish();
      };
      const onEnd = () => finish(new Error(`${this.path}: the console closed`));
      const onError = (e: Error) => finish(new Error(`${this.path}: ${e.message}`));
      this.input.on("data", onData);
      this.input.on("end", onEnd);
      this.input.on("error", onError);
      this.input.resume();
    });
  }

  close(): void {
    this.input.destroy();
    for (const fd of [this.inFd, this.outFd]) {
      try {
        closeSync(fd);
      } catch {
        // already closed by the stream
      }
    }
  }
}
