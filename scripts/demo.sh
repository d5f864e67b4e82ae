#!/usr/bin/env bash
# The main job: set everything up, build Parapet and the test guest, encrypt the guest's whole
# disk (MBR and boot loader included) with a fresh key, and boot it under Parapet in QEMU.
# The guest reads its disk in plaintext through Parapet's ATA driver; the medium holds only
# ciphertext. The guest also shows that it runs on Parapet and what it cannot see.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s
[ -f build/guest.img ] || npx parapet image -o build/guest.img
demo=build/demo
mkdir -p "$demo"
rm -f "$demo"/disk.img*
cp build/guest.img "$demo/disk.img"

echo
echo "=== A new key, the whole disk encrypted with it, and the policy record for Parapet ==="
npx parapet keygen --force -o "$demo/disk.key"
npx parapet disk encrypt --key "$demo/disk.key" "$demo/disk.img"
npx parapet policy --whole-disk --key "$demo/disk.key" -o "$demo/policy.bin"
echo "First 64 bytes of the encrypted image (a plaintext MBR would show boot code and end in 55 AA):"
od -A d -t x1 -N 64 "$demo/disk.img"

echo
echo "=== Booting the encrypted disk under Parapet (QEMU TCG, AMD-V emulated, 2 CPUs; parapet run's default machine:"
echo "    q35 with an emulated Intel IOMMU for DMA isolation, the disk on a PIIX IDE controller) ==="
npx parapet run "$demo/disk.img" --cpus 2 --policy "$demo/policy.bin" --hv-log build/hv.log --commands "
  cat /proc/parapet/version ;;
  echo 'The guest sees a plaintext partition table and boot files on /dev/sda:' ; cat /proc/partitions ;;
  mountboot ; ls -l /boot ;;
  echo 'Transfer mode of the disk (bus-master DMA through Parapet shadow buffers):' ; cat /sys/class/ata_device/dev1.0/xfer_mode ;;
  echo 'Writing /boot/NOTE.TXT:' ; echo parapet-demo-note-written-by-the-guest > /boot/NOTE.TXT ; cat /boot/NOTE.TXT ;;
  umount /boot ; sync ;;
  echo 'CPUID 80000001h (SVM is ECX bit 2):' ; ptest cpuid 0x80000001 ;;
  echo 'Every CPU, probed on itself: its Parapet vCPU, SVM/VMX hidden, EFER.SVME refused:' ; cat /proc/parapet/cpus ;;
  echo 'Setting EFER.SVME from the guest:' ; ptest wrmsr 0 0xc0000080 0x1d01 ;;
  echo 'DMA isolation (the IOMMU held by Parapet, no DMAR table for the guest), keys in force, DMA blocked:' ; cat /proc/parapet/status ; ls /sys/firmware/acpi/tables ;;
  echo 'VM exits so far, by reason (0 cpuid, 1 rdmsr, 2 wrmsr, 3 io, 4 vmmcall, 5 svm, 6 npf, 7 shutdown, 8 other, 9 nmi):' ; cat /proc/parapet/exits"

echo
echo "=== On the medium ==="
if grep -q parapet-demo-note-written-by-the-guest "$demo/disk.img"; then
  echo "FAIL: the note is in the clear on the medium" >&2
  exit 1
fi
echo "The note the guest wrote does not appear in the raw image: it is stored encrypted."
npx parapet disk verify --key "$demo/disk.key" "$demo/disk.img"
echo
echo "=== Hypervisor log (build/hv.log) ==="
cat build/hv.log
