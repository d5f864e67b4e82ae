// Just enough of an ELF64 (x86-64, little-endian) reader for the guest image
// builder: the program interpreter, DT_NEEDED/DT_SONAME, and the dynamic
// symbols with their GNU symbol versions. Field offsets follow the System V
// gABI and the LSB's symbol-versioning sections.

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;
const SHT_DYNSYM = 11;
const SHT_GNU_VERDEF = 0x6ffffffd;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

export interface ElfSymbol {
  name: string;
  /** GNU version name (e.g. GLIBC_2.34), when the symbol has one. */
  version?: string;
  /** For an import: the file its version is required from (the verneed file). */
  versionFile?: string;
  weak: boolean;
  func: boolean;
}

export interface ElfInfo {
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2 (executables only). */
  interp?: string;
  needed: string[];
  soname?: string;
  /** Undefined global/weak dynamic symbols. */
  imports: ElfSymbol[];
  /** Defined global/weak dynamic symbols. */
  exports: ElfSymbol[];
}

/** True when `buf` starts with the ELF magic. */
export function isElf(buf: Buffer): boolean {
  return buf.length >= 64 && buf.readUInt32BE(0) === 0x7f454c46;
}

function cstr(buf: Buffer, off: number): string {
  let end = off;
  while (end < buf.length && buf[end] !== 0) end++;
  return buf.toString("latin1", off, end);
}

interface Segment {
  vaddr: number;
  offset: number;
  filesz: number;
}
interface Section {
  type: number;
  offset: number;
  size: number;
  link: number;
  info: number;
}
type VersionNames = Map<number, { name: string; file?: string }>;

/** The program headers: loaded segments, the dynamic segment and PT_INTERP. */
function programHeaders(buf: Buffer) {
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const loads: Segment[] = [];
  let dynamic: { offset: number; size: number } | undefined;
  let interp: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const type = buf.readUInt32LE(p);
    const offset = Number(buf.readBigUInt64LE(p + 8));
    const vaddr = Number(buf.readBigUInt64LE(p + 0x10));
    const filesz = Number(buf.readBigUInt64LE(p + 0x20));
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
    else if (type === PT_INTERP) interp = cstr(buf, offset);
  }
  return { loads, dynamic, interp };
}

/** DT_NEEDED and DT_SONAME from the dynamic segment (its string table found through the loaded segments). */
function dynamicNames(buf: Buffer, what: string, loads: Segment[], dynamic: { offset: number; size: number } | undefined) {
  const needed: string[] = [];
  let soname: string | undefined;
  if (!dynamic) return { needed, soname };
  const entries: [bigint, bigint][] = [];
  for (let p = dynamic.offset; p + 16 <= dynamic.offset + dynamic.size; p += 16) {
    const tag = buf.readBigInt64LE(p);
    if (tag === DT_NULL) break;
    entries.push([tag, buf.readBigUInt64LE(p + 8)]);
  }
  const strtab = entries.find(([t]) => t === DT_STRTAB);
  if (strtab) {
    const vaddr = Number(strtab[1]);
    const seg = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz);
    if (!seg) throw new Error(`${what}: address 0x${vaddr.toString(16)} is in no loaded segment`);
    const base = vaddr - seg.vaddr + seg.offset;
    for (const [tag, val] of entries) {
      if (tag === DT_NEEDED) needed.push(cstr(buf, base + Number(val)));
      else if (tag === DT_SONAME) soname = cstr(buf, base + Number(val));
    }
  }
  return { needed, soname };
}

/** The section headers (symbols come from them: Debian strips debug info, not these). */
function sectionHeaders(buf: Buffer): Section[] {
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const sections: Section[] = [];
  for (let i = 0; i < shnum && shoff; i++) {
    const s = shoff + i * shentsize;
    sections.push({
      type: buf.readUInt32LE(s + 4),
      offset: Number(buf.readBigUInt64LE(s + 0x18)),
      size: Number(buf.readBigUInt64LE(s + 0x20)),
      link: buf.readUInt32LE(s + 0x28),
      info: buf.readUInt32LE(s + 0x2c),
    });
  }
  return sections;
}

/** Version index -> name from SHT_GNU_VERDEF, and (with the file it is needed from) SHT_GNU_VERNEED. */
function versionNames(buf: Buffer, sections: Section[]): VersionNames {
  const versions: VersionNames = new Map();
  const verdef = sections.find((s) => s.type === SHT_GNU_VERDEF);
  if (verdef) {
    const vstr = sections[verdef.link].offset;
    let p = verdef.offset;
    for (let i = 0; i < verdef.info; i++) {
      const ndx = buf.readUInt16LE(p + 4);
      const aux = p + buf.readUInt32LE(p + 12);
      versions.set(ndx, { name: cstr(buf, vstr + buf.readUInt32LE(aux)) });
      const next = buf.readUInt32LE(p + 16);
      if (!next) break;
      p += next;
    }
  }
  const verneed = sections.find((s) => s.type === SHT_GNU_VERNEED);
  if (verneed) {
    const vstr = sections[verneed.link].offset;
    let p = verneed.offset;
    for (let i = 0; i < verneed.info; i++) {
      const cnt = buf.readUInt16LE(p + 2);
      const file = cstr(buf, vstr + buf.readUInt32LE(p + 4));
      let a = p + buf.readUInt32LE(p + 8);
      for (let j = 0; j < cnt; j++) {
        versions.set(buf.readUInt16LE(a + 6), { name: cstr(buf, vstr + buf.readUInt32LE(a + 8)), file });
        const next = buf.readUInt32LE(a + 12);
        if (!next) break;
        a += next;
      }
      const next = buf.readUInt32LE(p + 12);
      if (!next) break;
      p += next;
    }
  }
  return versions;
}

/** The global and weak dynamic symbols, undefined ones as imports, defined ones as exports. */
function dynamicSymbols(buf: Buffer, sections: Section[]): { imports: ElfSymbol[]; exports: ElfSymbol[] } {
  const imports: ElfSymbol[] = [];
  const exports: ElfSymbol[] = [];
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  if (!dynsym) return { imports, exports };
  const strOff = sections[dynsym.link].offset;
  const versions = versionNames(buf, sections);
  const versym = sections.find((s) => s.type === SHT_GNU_VERSYM);
  const count = Math.floor(dynsym.size / 24);
  for (let i = 1; i < count; i++) {
    const e = dynsym.offset + i * 24;
    const info = buf[e + 4];
    const bind = info >> 4;
    const type = info & 0xf;
    if (bind !== STB_GLOBAL && bind !== STB_WEAK) continue;
    const name = cstr(buf, strOff + buf.readUInt32LE(e));
    if (!name) continue;
    const shndx = buf.readUInt16LE(e + 6);
    const vidx = versym ? buf.readUInt16LE(versym.offset + i * 2) & 0x7fff : 0;
    const v = vidx > 1 ? versions.get(vidx) : undefined;
    const sym: ElfSymbol = {
      name,
      version: v?.name,
      versionFile: shndx === 0 ? v?.file : undefined,
      weak: bind === STB_WEAK,
      func: type === STT_FUNC || type === STT_GNU_IFUNC,
    };
    (shndx === 0 ? imports : exports).push(sym);
  }
  return { imports, exports };
}

/** Parses a 64-bit little-endian ELF file's dynamic linking information. */
export function readElf(buf: Buffer, what = "file"): ElfInfo {
  if (!isElf(buf)) throw new Error(`${what} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${what} is not a 64-bit little-endian ELF file`);
  const { loads, dynamic, interp } = programHeaders(buf);
  const { needed, soname } = dynamicNames(buf, what, loads, dynamic);
  const { imports, exports } = dynamicSymbols(buf, sectionHeaders(buf));
  return { interp, needed, soname, imports, exports };
}
