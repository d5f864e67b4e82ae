// Progress of a long conversion (parapet disk, parapet luks format) on stderr: a bar on a
// terminal, a line every 10 % (or 30 s) otherwise.
import type { Progress } from "./diskcrypt/common.ts";
import { SECTOR } from "./xts.ts";

const mib = (sectors: bigint) => (Number(sectors) * SECTOR) / 2 ** 20;

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60),
    sec = Math.floor(s % 60);
  return `${m}:${String(sec).padStart(2, "0")}`;
}

/** A progress bar on a terminal, a line every 10% (or 30 s) otherwise. */
export function progressReporter(label: string, quiet: boolean): { update: (p: Progress) => void; finish: () => void } {
  if (quiet) return { update: () => {}, finish: () => {} };
  const tty = process.stderr.isTTY === true;
  const start = Date.now();
  let base: bigint | undefined;
  let lastDraw = 0,
    lastPct = -1,
    drawn = false;
  return {
    update(p) {
      base ??= p.done;
      const now = Date.now();
      const frac = p.total > 0n ? Number(p.done) / Number(p.total) : 1;
      const rate = mib(p.done - base) / Math.max((now - start) / 1000, 1e-3);
      const eta = rate > 0 ? mib(p.total - p.done) / rate : Infinity;
      if (tty) {
        if (now - lastDraw < 100 && p.done !== p.total) return;
        lastDraw = now;
        const width = 30,
          full = Math.round(frac * width);
        const bar = "#".repeat(full) + "-".repeat(width - full);
        process.stderr.write(
          `\r${label} [${bar}] ${(frac * 100).toFixed(1).padStart(5)}%  ` +
            `${mib(p.done).toFixed(0)}/${mib(p.total).toFixed(0)} MiB  ${rate.toFixed(0)} MiB/s  ETA ${fmtTime(eta)}  `,
        );
        drawn = true;
      } else {
        const pct = Math.floor(frac * 10) * 10;
        const finished = p.done === p.total;
        if (!finished && lastDraw !== 0 && !(pct !== lastPct && now - lastDraw >= 2000) && now - lastDraw < 30_000) return;
        lastPct = pct;
        lastDraw = now;
        process.stderr.write(`${label}: ${(frac * 100).toFixed(0)}% (${mib(p.done).toFixed(1)}/${mib(p.total).toFixed(1)} MiB)\n`);
      }
    },
    finish() {
      if (tty && drawn) process.stderr.write("\n");
    },
  };
}
