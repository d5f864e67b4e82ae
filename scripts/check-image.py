#!/usr/bin/env python3
"""Check that build/parapet.elf is loadable as a flat multiboot image: the multiboot headers sit
early enough in the file, and every loadable segment lies at file offset = load address - base."""
import struct, sys

path = sys.argv[1]
data = open(path, "rb").read()
def fail(msg):
    sys.exit(f"check-image: {path}: {msg}")

mb1 = data.find(struct.pack("<I", 0x1BADB002))
mb2 = data.find(struct.pack("<I", 0xE85250D6))
if mb1 < 0 or mb1 + 32 > 8192 or mb1 % 4:
    fail("multiboot header missing or beyond the first 8 KiB")
if mb2 < 0 or mb2 > 32768 or mb2 % 8:
    fail("multiboot2 header missing or beyond the first 32 KiB")
header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<5I", data, mb1 + 12)
file_base = mb1 - (header_addr - load_addr)

phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
for i in range(phnum):
    p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz = struct.unpack_from("<IIQQQQQ", data, phoff + i * phentsize)
    if p_type != 1 or p_filesz == 0:
        continue
    if p_offset - file_base != p_paddr - load_addr:
        fail(f"segment at {p_paddr:#x} is not at its flat-image file offset")
    if p_paddr + p_filesz > load_end:
        fail(f"segment at {p_paddr:#x} extends past load_end_addr")
if file_base + (load_end - load_addr) > len(data):
    fail("file shorter than the image it declares")
if not (load_addr <= entry < load_end and load_end <= bss_end):
    fail("inconsistent multiboot address fields")
