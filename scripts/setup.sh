#!/usr/bin/env bash
# Installs everything Parapet needs on a fresh Debian 12 machine (run as root):
# QEMU 10 from bookworm-backports, the image and ISO tools, clang-format (npm run check:format),
# and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for cmd in qemu-system-x86_64 mformat syslinux grub-mkrescue xorriso cpio xz clang clang-format; do
  command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  qemu-system-x86_64 --version | grep -q 'version 10\.' || need_apt=1
fi
[ -f /usr/lib/grub/i386-pc/multiboot2.mod ] || need_apt=1
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need_apt=1
ls -d /usr/src/linux-headers-*-amd64 >/dev/null 2>&1 || need_apt=1
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need_apt=1
[ -f /usr/include/openssl/evp.h ] || need_apt=1   # libssl-dev: parapet bench crypto

if [ "$need_apt" = 1 ]; then
  src=/etc/apt/sources.list.d/debian.sources
  bp=/etc/apt/sources.list.d/parapet-backports.sources
  if [ ! -f "$bp" ]; then
    if [ -f "$src" ]; then
      # Copy the machine's own bookworm stanza, with the suite changed to bookworm-backports.
      python3 - "$src" "$bp" <<'PY'
import sys
text = open(sys.argv[1]).read()
for stanza in text.split("\n\n"):
    lines = stanza.strip().splitlines()
    suites = [l for l in lines if l.startswith("Suites:")]
    if suites and suites[0].split()[1].startswith("bookworm") and "security" not in stanza:
        out = [("Suites: bookworm-backports" if l.startswith("Suites:") else l) for l in lines]
        open(sys.argv[2], "w").write("\n".join(out) + "\n")
        break
else:
    sys.exit("no bookworm stanza in " + sys.argv[1])
PY
    else
      echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/parapet-backports.list
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q -t bookworm-backports qemu-system-x86 qemu-utils
  apt-get install -y -q --no-install-recommends \
    mtools syslinux syslinux-common grub-pc-bin grub-common xorriso cpio xz-utils \
    kmod cryptsetup-bin fdisk linux-headers-amd64 clang clang-format libclang-rt-14-dev libssl-dev \
    softhsm2 opensc openssl
fi

npm ci --no-audit --no-fund
