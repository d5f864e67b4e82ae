// What the commands of the `parapet` CLI share (src/commands/ never import each other): the
// argument parsers their options declare, the exit statuses they document, and how paths show.
//
// One way of validating in every command: a value is checked where the option is declared, by
// commander (.choices(), .conflicts(), requiredOption, or an argParser from here that throws
// InvalidArgumentError); a rule across options that commander cannot express calls the
// command's .error(). Either way commander prints one line through the output configured in
// src/cli.ts, "parapet: option '--cpus <n>' argument '0' is invalid. expected an integer
// 1..16", and exits with status 1.
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { relative } from "node:path";

/** Refused: nothing was changed (parapet disk, parapet luks). */
export const EXIT_REFUSED = 2;
/** parapet disk verify found a problem. */
export const EXIT_VERIFY_FAILED = 3;
/** Interrupted by Ctrl-C; the same command resumes. */
export const EXIT_INTERRUPTED = 130;

/** An argParser that accepts a whole number in [min, max] (`unit` names what it counts). */
export function integer(min: number, max: number, unit = "") {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer ${min}..${max}${unit ? ` ${unit}` : ""}`);
    }
    return n;
  };
}

/** An argParser for a non-negative number of seconds (fractions allowed). */
export function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !(n >= 0)) throw new InvalidArgumentError("expected seconds (a number >= 0)");
  return n;
}

/** An argParser for comma-separated integers in [min, max], e.g. CPU counts "1,4". */
export function integerList(min: number, max: number, example: string) {
  return (v: string): number[] => {
    const list = v.split(",").map((x) => x.trim());
    const out = list.map((x) => Number(x));
    if (!list.length || out.some((n, i) => list[i] === "" || !Number.isInteger(n) || n < min || n > max)) {
      throw new InvalidArgumentError(`expected integers ${min}..${max} separated by commas, e.g. ${example}`);
    }
    return out;
  };
}

/** An argParser for a sector number, decimal or 0x hex. */
export function sectorNumber(v: string): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(v.trim())) throw new InvalidArgumentError("expected a sector number (decimal or 0x hex)");
  return BigInt(v.trim());
}

/** An argParser for a choice between 0 and 1 that also takes a word for each, e.g. 0/primary, 1/secondary. */
export function bit(words: readonly [string, string]) {
  return (v: string): 0 | 1 => {
    if (v === "0" || v === words[0]) return 0;
    if (v === "1" || v === words[1]) return 1;
    throw new InvalidArgumentError(`expected 0 (${words[0]}) or 1 (${words[1]})`);
  };
}

/** An argParser from a library's own check: whatever `parse` throws becomes the option's error. */
export function checked<T>(parse: (v: string) => T) {
  return (v: string): T => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
    }
  };
}

/** A repeatable option: each occurrence parsed and appended. */
export function repeatable<T>(parse: (v: string) => T) {
  return (v: string, all: T[] = []): T[] => [...all, parse(v)];
}

/** A path relative to the working directory when it is below it, else as given. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}
