/*
 * QEMU's firmware configuration device (fw_cfg), x86 I/O-port form, as the parapass-through
 * driver mediates it. Source: QEMU docs/specs/fw_cfg.rst ("Guest-side Hardware Interface",
 * "DMA interface"), behaviour as in hw/nvram/fw_cfg.c.
 *
 * Items are blobs chosen by a 16-bit key. Writing the selector chooses one and rewinds its data
 * offset to 0; the data register then reads it byte by byte, and a DMA transfer reads, skips or
 * writes it. A key whose entry number is past the device's last slot selects nothing: data reads
 * give 0, DMA reads fill zeros, DMA writes fail. The DMA engine reaches every physical address
 * (it is not behind an IOMMU), so its descriptor and data range are checked here.
 */
#ifndef PARAPET_FWCFG_H
#define PARAPET_FWCFG_H

#include "core/types.h"

/* Ports. */
#define FWCFG_PORT_SEL 0x510  /* selector: 16-bit write, key little-endian */
#define FWCFG_PORT_DATA 0x511 /* data: 8-bit read, sequential (overlaps the selector's high byte) */
#define FWCFG_PORT_DMA 0x514  /* DMA address, 64-bit big-endian: dword 0x514 high, 0x518 low; */
#define FWCFG_DMA_PORTS 8     /* the low write starts the transfer; reads give "QEMU CFG" */

/* Keys (selector values). Bit 14 was the write channel (writes through the data port, ignored
 * since QEMU 2.4), bit 15 selects the architecture's own table; the entry is bits 13:0. */
#define FWCFG_KEY_SIGNATURE 0x00   /* "QEMU" */
#define FWCFG_KEY_ID 0x01          /* le32 feature bits */
#define FWCFG_KEY_KERNEL_ADDR 0x07 /* -kernel: load address (le32) */
#define FWCFG_KEY_KERNEL_SIZE 0x08
#define FWCFG_KEY_KERNEL_CMDLINE 0x09 /* legacy */
#define FWCFG_KEY_INITRD_ADDR 0x0a
#define FWCFG_KEY_INITRD_SIZE 0x0b
/* 0x0c boot device, 0x0d NUMA, 0x0e boot menu, 0x0f max CPUs: not boot files */
#define FWCFG_KEY_KERNEL_ENTRY 0x10
#define FWCFG_KEY_KERNEL_DATA 0x11 /* multiboot: the kernel image AND every module */
#define FWCFG_KEY_INITRD_DATA 0x12 /* multiboot: the boot information */
#define FWCFG_KEY_CMDLINE_ADDR 0x13
#define FWCFG_KEY_CMDLINE_SIZE 0x14
#define FWCFG_KEY_CMDLINE_DATA 0x15
#define FWCFG_KEY_SETUP_ADDR 0x16 /* Linux boot protocol: real-mode part */
#define FWCFG_KEY_SETUP_SIZE 0x17
#define FWCFG_KEY_SETUP_DATA 0x18
#define FWCFG_KEY_FILE_DIR 0x19 /* be32 count, then {be32 size, be16 key, u16, char name[56]} */
#define FWCFG_KEY_FILE_FIRST 0x20
#define FWCFG_KEY_ENTRY_MASK 0x3FFF
#define FWCFG_KEY_INVALID 0xFFFF /* QEMU's FW_CFG_INVALID: selects nothing */

#define FWCFG_ID_TRADITIONAL 0x01 /* the selector and data ports */
#define FWCFG_ID_DMA 0x02         /* the DMA interface */

/* The DMA access descriptor in memory; every field big-endian. */
struct fwcfg_dma {
	u32 control; /* bits below; 31:16 the key for SELECT. The device sets 0 or ERROR when done */
	u32 length;  /* bytes */
	u64 address; /* physical address of the data */
} __packed;
_Static_assert(sizeof(struct fwcfg_dma) == 16, "fw_cfg DMA descriptor is 16 bytes");

#define FWCFG_DMA_ERROR 0x01
#define FWCFG_DMA_READ 0x02   /* item -> memory (wins over WRITE and SKIP) */
#define FWCFG_DMA_SKIP 0x04   /* advance the item's offset, no memory access */
#define FWCFG_DMA_SELECT 0x08 /* select the key in bits 31:16 first */
#define FWCFG_DMA_WRITE 0x10  /* memory -> item (wins over SKIP) */

/*
 * Parapet's own boot files: the kernel (with every multiboot module: the policy record), the
 * boot information, the command line and the Linux setup code, with their address and size
 * items. Selecting one selects FWCFG_KEY_INVALID instead. Bits 15:14 are ignored (QEMU masks
 * them off to find the entry).
 */
bool fwcfg_key_blocked(u16 key);

enum fwcfg_verdict {
	FWCFG_DMA_PASS,           /* the device may run *d as it is */
	FWCFG_DMA_SELECT_BLOCKED, /* the same, with the SELECT key replaced by FWCFG_KEY_INVALID */
	FWCFG_DMA_REFUSED,        /* it would move data outside guest RAM: do not run it */
};

/*
 * Check a descriptor already copied out of guest memory (once). The device touches memory only
 * for READ or WRITE with a non-zero length; then [address, address+length) must lie wholly in
 * guest RAM (gmem_map: never Parapet's region, never MMIO). A SELECT of a blocked key is
 * rewritten in *d. A pure function of *d and the guest memory map.
 */
enum fwcfg_verdict fwcfg_dma_check(struct fwcfg_dma *d);

/* Counters since start (for tests and logs). */
struct fwcfg_stats {
	u32 selects_blocked; /* selector writes of a blocked key */
	u32 dma;             /* DMA transfers started */
	u32 dma_blocked;     /* ... whose SELECT of a blocked key was replaced */
	u32 dma_refused;     /* descriptors refused (ERROR) or not in guest RAM */
};
extern struct fwcfg_stats fwcfg_stats;

/* Probe the device (key 0 reads "QEMU"); if present, reset its selection and hook 0x510-0x511
 * and 0x514-0x51B. Needs gmem_init() first. */
void fwcfg_init(void);

#ifdef HOST_TEST
/* The device's ports (io_port_hw in the hypervisor); host tests substitute a fake device. */
extern u32 (*fwcfg_hw)(u16 port, unsigned size, bool in, u32 val);
#endif

#endif
