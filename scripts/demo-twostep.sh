#!/usr/bin/env bash
# Two-step execution, end to end: encrypt a copy of the test guest's disk under a LUKS2
# detached header with a passphrase, put Parapet, the preboot guest and the header on a GRUB
# ISO, and boot it in QEMU. The preboot guest asks for the passphrase on COM1 (this script
# types it), hands the volume key to Parapet, and Parapet boots the guest from the encrypted
# disk. The guest then shows that it reads its disk and that no copy of the key is in its RAM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s
[ -f build/guest.img ] || npx parapet image -o build/guest.img
[ -f build/preboot/initrd.gz ] || npx parapet preboot build
demo=build/demo-twostep
mkdir -p "$demo"
rm -f "$demo"/disk.img* "$demo/disk.hdr"
cp build/guest.img "$demo/disk.img"
printf 'correct horse battery staple\n' > "$demo/passphrase"
chmod 600 "$demo/passphrase"

echo
echo "=== The disk encrypted in place under a new LUKS2 detached header ==="
npx parapet luks format --disk "$demo/disk.img" --header "$demo/disk.hdr" --passphrase-file "$demo/passphrase"
npx parapet luks status --disk "$demo/disk.img" --header "$demo/disk.hdr"
npx parapet luks key --disk "$demo/disk.img" --header "$demo/disk.hdr" --passphrase-file "$demo/passphrase" -o "$demo/volume.key"
key=$(od -A n -t x1 -N 32 "$demo/volume.key" | tr -d ' \n')
echo "First 64 bytes of the encrypted image (a plaintext MBR would end in 55 AA):"
od -A d -t x1 -N 64 "$demo/disk.img"

echo
echo "=== Parapet, the preboot guest and the header on one GRUB ISO ==="
npx parapet iso --preboot --header "$demo/disk.hdr" -o "$demo/boot.iso"

echo
echo "=== Booting it (QEMU TCG, AMD-V emulated, 2 CPUs, q35 with an emulated Intel IOMMU and the disk on PIIX IDE);"
echo "    the passphrase is typed at 'Passphrase:' ==="
npx parapet run "$demo/disk.img" --iso "$demo/boot.iso" --cpus 2 --snapshot --hv-log build/hv.log \
  --passphrase-file "$demo/passphrase" --commands "
  cat /proc/cmdline ;;
  echo 'The guest reads its boot partition through Parapet:' ; mountboot ; ls -l /boot ;;
  echo 'All of the guest RAM, scanned for the first half of the volume key (hits0) and for the passphrase (hits1):' ;
    ptest kcore-scan $key $(printf 'correct horse battery staple' | od -A n -t x1 | tr -d ' \n')"
rm -f "$demo/volume.key"

echo
echo "=== Hypervisor log (build/hv.log): the preboot kernel, the handoff, the wipe, the target ==="
grep -E "iommu:|preboot:|handoff:|ata: .*(reset|protected)|entering the guest" build/hv.log
