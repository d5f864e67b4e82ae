// Stub libraries: a library a program links only for features the guest never uses (ToolSpec
// stub) is replaced by a generated one defining every symbol the programs import from it, by
// version, and every unversioned import that no real library defines, so that BIND_NOW
// loading succeeds.
import type { ElfInfo } from "../elf.ts";

/** A stub library to generate: every symbol the programs import from it, by version. */
export interface StubLibrary {
  soname: string;
  /** Version name ("" for unversioned) -> symbol names. */
  symbols: Map<string, string[]>;
}

/**
 * The stubs that `users` (the ELF files needing a stubbed soname) need, given the real
 * libraries that are loaded beside them.
 */
export function stubLibraries(users: readonly ElfInfo[], stubbed: ReadonlySet<string>, libraries: readonly ElfInfo[]): StubLibrary[] {
  const defined = new Set<string>();
  for (const lib of libraries) {
    for (const e of lib.exports) {
      defined.add(e.name);
      if (e.version) defined.add(`${e.name}@${e.version}`);
    }
  }
  const stubs = new Map<string, StubLibrary>();
  const stubFor = (so: string): StubLibrary => {
    let s = stubs.get(so);
    if (!s) stubs.set(so, (s = { soname: so, symbols: new Map() }));
    return s;
  };
  const add = (s: StubLibrary, version: string, name: string): void => {
    const list = s.symbols.get(version) ?? [];
    if (!list.includes(name)) list.push(name);
    s.symbols.set(version, list);
  };
  for (const info of users) {
    const mine = info.needed.filter((so) => stubbed.has(so));
    for (const so of mine) stubFor(so);
    const loose: string[] = [];
    for (const sym of info.imports) {
      if (sym.versionFile && stubbed.has(sym.versionFile)) add(stubFor(sym.versionFile), sym.version!, sym.name);
      else if (!sym.version && !sym.weak && !defined.has(sym.name)) loose.push(sym.name);
    }
    // Unversioned imports cannot say which library they expect: any loaded one may define them.
    const plain = mine.filter((so) => ![...stubFor(so).symbols.keys()].some((v) => v !== ""));
    for (const name of loose) for (const so of plain.length ? plain : mine.slice(0, 1)) add(stubFor(so), "", name);
  }
  return [...stubs.values()];
}
