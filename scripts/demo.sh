#!/usr/bin/env bash
# The main job: set everything up, build Parapet and the test guest, and boot the guest under
# Parapet in QEMU. The guest then shows, from inside, that it runs on Parapet and what it cannot see.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s
[ -f build/guest.img ] || npx parapet image -o build/guest.img
echo
echo "=== Booting the test guest under Parapet (QEMU TCG, AMD-V emulated, default pc machine) ==="
npx parapet run build/guest.img --snapshot --hv-log build/hv.log --commands "
  cat /proc/parapet/version ;;
  echo 'CPUID 80000001h (SVM is ECX bit 2):' ; ptest cpuid 0x80000001 ;;
  echo 'Guest memory map (Parapet hides itself as Reserved):' ; ptest memmap ;;
  echo 'Setting EFER.SVME from the guest:' ; ptest wrmsr 0 0xc0000080 0x1d01 ;;
  echo 'VM exits so far, by reason (0 cpuid, 1 rdmsr, 2 wrmsr, 3 io, 4 vmmcall, 5 svm, 6 npf, 7 shutdown, 8 other):' ; cat /proc/parapet/exits"
echo
echo "=== Hypervisor log (build/hv.log) ==="
cat build/hv.log
