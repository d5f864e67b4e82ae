/*
 * PCI configuration space: enumeration at init (configuration mechanism #1, following
 * bridges), declarative driver matching, and mediation of the guest's configuration accesses
 * (ports 0xCF8/0xCFC-0xCFF, and ECAM pages through io/ecam.c): accesses to devices without a
 * driver pass through unchanged; writes to a bound device go through its driver. See docs/io.md.
 */
#ifndef PARAPET_PCI_H
#define PARAPET_PCI_H

#include "core/types.h"
#include "vmm/io.h"
#include "vmm/mmio.h"

#define PCI_ANY_ID 0xFFFF
#define PCI_DEVS_MAX 128
#define PCI_BUSES_MAX 64 /* buses enumerated, following bridges from bus 0 */

/* Configuration registers Parapet uses. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_CLASS_REV 0x08
#define PCI_HEADER_TYPE 0x0E
#define PCI_BAR0 0x10
#define PCI_PRIMARY_BUS 0x18 /* type 1: primary, secondary, subordinate bus numbers */
#define PCI_SECONDARY_BUS 0x19

#define PCI_COMMAND_IO (1u << 0)
#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)

struct pci_driver;

/* Where BAR i decodes, as the device will after the landed write. */
struct pci_window {
	bool io;
	bool on; /* the space's decoding is enabled and the BAR is assigned */
	u64 base, len;
};

struct pci_dev {
	u8 bus, devfn;
	u16 vendor, device;
	u8 class, subclass, progif;
	u8 header_type;  /* bits 6:0 of the header type register */
	u8 nbars;        /* 6 for type 0, 2 for a bridge */
	u32 bar[6];      /* as last written (tracked): re-read after every landed write */
	u16 command;     /* as last written (tracked) */
	u64 bar_size[6]; /* sized at init; a 64-bit BAR's size is on its low half */
	u16 held;        /* decoding pci_hold_decoding keeps off while one guest write lands */
	const struct pci_driver *drv;
	void *priv; /* the driver's */
};

struct pci_driver {
	const char *name;
	u16 vendor, device; /* PCI_ANY_ID = 0xFFFF for any */
	u8 class, subclass; /* 0xFF for any */
	/* Optional: put the device back in the state firmware expects, before bind, when
	 * pci_init() is asked to (the handoff from the preboot guest). */
	void (*reset)(struct pci_dev *d);
	void (*bind)(struct pci_dev *d); /* at init, for each matching device; may decline by
					     * setting d->drv = NULL (nothing of it is then mediated) */
	/* A guest write to a bound device's config space, before it reaches the device: the driver
	 * may change *val or return false to drop it. offset/size as the guest wrote. */
	bool (*cfg_write)(struct pci_dev *d, u16 offset, unsigned size, u32 *val);
	/* After any write that landed (BARs/command already re-read into d). */
	void (*cfg_written)(struct pci_dev *d, u16 offset, unsigned size);
	/* Optional: after a landed guest write changed BAR i's window (address moved, or decoding
	 * turned on or off). The device's decoding for that space stays off while this runs. Return
	 * false to refuse: pci.c restores the BAR's previous value (or leaves decoding off, when it was
	 * the command register that turned it on) so the device never decodes where the driver does not trap. */
	bool (*bar_moved)(struct pci_dev *d, unsigned bar, const struct pci_window *old, const struct pci_window *now);
	/* Optional: a guest read of a bound device, after the device answered; may change *val. */
	void (*cfg_read)(struct pci_dev *d, u16 offset, unsigned size, u32 *val);
	/* A supporting driver (e.g. keeping the ECAM window in place) stays bound only when some
	 * other driver binds a device: alone it would only cost exits. */
	bool support;
};

/*
 * Registration: one line after the driver's definition, e.g. PCI_DRIVER(ata_driver). The
 * pointers land in the "pci_drivers" section (placed by link.ld; the host toolchain defines
 * the same __start_/__stop_ symbols for host tests). Drivers are tried in link order; the
 * first match binds.
 */
#define PCI_DRIVER(drv)                                          \
	static const struct pci_driver *const __pci_driver_##drv \
	    __attribute__((used, section("pci_drivers"), aligned(8))) = &(drv)

/* Parapet's own configuration access (offset < 4096 with ECAM, else < 256; sizes 1, 2, 4;
 * naturally aligned). Reads of what cannot be reached return all ones. */
u32 pci_read(const struct pci_dev *d, u16 offset, unsigned size);
void pci_write(const struct pci_dev *d, u16 offset, unsigned size, u32 val);

/* Raw access by address, for code that has no struct pci_dev (ECAM discovery). */
u32 pci_cfg_read(u8 bus, u8 devfn, u16 offset, unsigned size);
void pci_cfg_write(u8 bus, u8 devfn, u16 offset, unsigned size, u32 val);

/* Who handles guest accesses to ports 0xCF8-0xCFB other than the dword CONFIG_ADDRESS (0xCF9
 * is the reset control register): the hardware unless set. */
void pci_set_other_ports(u32 (*fn)(u16 port, unsigned size, bool in, u32 val));

/* Bus mastering off on every function found at init, bridges included (no device can start
 * a DMA; before a sleep, which resets them all anyway). Saves each command register in saved[]
 * (at most max); returns how many. pci_dma_restore puts them back (a sleep that did not happen). */
unsigned pci_dma_stop(u16 *saved, unsigned max);
void pci_dma_restore(const u16 *saved, unsigned n);

/* Enumerate, bind drivers, and hook ports 0xCF8-0xCFF. With `reset`, each driver first puts
 * its devices back in the state firmware left them in (driver->reset). */
void pci_init(bool reset);

/* The guest's configuration access, from port 0xCFC or an ECAM page: the one path through
 * which every guest config access to a bound device passes. */
u32 pci_guest_read(u8 bus, u8 devfn, u16 offset, unsigned size);
void pci_guest_write(u8 bus, u8 devfn, u16 offset, unsigned size, u32 val);

/* The devices found, and a lookup. */
unsigned pci_devices(struct pci_dev **out);
struct pci_dev *pci_find(u8 bus, u8 devfn);

/* Offsets >= 256 go through ECAM at this address once it is known (io/ecam.c). */
void pci_set_ecam(u64 base, u8 bus_start, u8 bus_end);

/* An I/O BAR's port base, a memory BAR's address (64-bit BARs use bar[i+1] too). */
static inline bool pci_bar_is_io(u32 bar)
{
	return bar & 1;
}
u64 pci_bar_addr(const struct pci_dev *d, unsigned i);

/*
 * Following BARs (drivers with bar_moved). For a guest write to a bound device (port 0xCFC or
 * ECAM: both end in pci_guest_write), pci.c works out what it can move:
 *   - a write to any byte of a BAR (a 64-bit BAR's high half included) can move that BAR's
 *     window: its space (I/O or memory, by the BAR's read-only type bits) is turned off in the
 *     command register before the write lands;
 *   - a write to the command register that turns I/O or memory decoding on lands with that bit
 *     still clear; one that turns it off lands as written.
 * Then every BAR's window is computed again (from the re-read BARs and the command register as
 * the guest wrote it), and bar_moved(d, i, old, now) runs for each window that changed: `on`
 * changed, or it is on and its base or length changed. A window that stays off (BAR sizing
 * with decoding off: all ones, then the old value) calls nothing. A refusal restores the BAR
 * (both halves of a 64-bit one) to its value before the write, or keeps the space off when the
 * command register turned it on; turning a space off cannot be refused. Then cfg_written runs,
 * and the command register gets the decoding the guest asked for, less what a refusal keeps off.
 * The guest reads back what the device then holds. Mediated writes are serialised (one lock for
 * all functions), so a driver's bar_moved, cfg_write and cfg_written never run concurrently.
 *
 * A window's base: an I/O BAR's bits 31:2, a memory BAR's bits 31:4 (and the high half's, 64-
 * bit). `on` needs the space's command bit and a non-zero base. An all-ones (sizing) value with
 * decoding on is a window like any other (at the top of the space): a driver that cannot trap
 * there refuses, and the guest reads back the old value, not the size mask. A 64-bit BAR written
 * one half at a time with decoding on moves twice (the window between the two writes is real: the
 * device decodes it); a refusal of the first half restores it, so the second lands at the old
 * low half. Not followed: the expansion ROM BAR, a bridge's windows.
 */

/* BAR i's window as the device decodes now (from the tracked registers); all zero (io false, on
 * false) for a BAR that is not implemented or the high half of a 64-bit one. */
void pci_bar_window(const struct pci_dev *d, unsigned i, struct pci_window *w);

/* From cfg_write, for a driver's own register that moves what the device decodes (IDE's
 * programming interface): keep `space` (PCI_COMMAND_IO and/or PCI_COMMAND_MEMORY) off while this
 * write lands; pci.c turns it back on, as it was, after cfg_written. */
void pci_hold_decoding(struct pci_dev *d, u16 space);

/*
 * A region: what a driver traps for a window, I/O (an io hook, vmm/io.h) or memory (an mmio
 * region, vmm/mmio.h), followed with one call wherever the window goes:
 *
 *	static struct pci_region bm = { .io = true, .len = 16, .port = bm_io, .ctx = &state };
 *	... bar_moved: return pci_region_place(&bm, now);
 *
 * The driver fills the first fields (zero-initialised otherwise; never changed once placed);
 * pci.c keeps the rest.
 *   offset, len: the part of the window trapped, [base+offset, base+offset+len); len 0: all of
 *     it. A memory region traps the 4 KiB pages that part covers: accesses elsewhere on those
 *     pages reach the handler too (forward them: mmio_device_access).
 * pci_region_place(r, w): w off: stop trapping (the hook or region is removed; true). w on: trap
 * at w (added, or moved there). False, and nothing changed, when it cannot: I/O past port 0xFFFF
 * or on another hook's ports, a full table; memory below 1 MiB, on anything the guest's memory
 * map lists but reserved ranges (RAM, ACPI, NVS: a BAR moved onto RAM is refused), on Parapet's
 * region, beyond the nested page tables, on another trap's pages. With len, a part beyond the
 * window is refused too. A memory region that comes to span a different number of pages (never
 * for a BAR, which is aligned to its size) is added at its new pages before the old are released:
 * the two may not overlap. The window need not come from a BAR (IDE's legacy ports).
 * pci_region_remove(r): stop trapping.
 */
struct pci_region {
	bool io;
	u64 offset, len;
	io_handler port;         /* I/O */
	io_str_handler port_str; /* I/O, optional: string I/O */
	enum pt_access access;   /* memory: PT_NONE (every access; also when left PT_RW) or PT_RO (writes) */
	mmio_handler mem;        /* memory */
	void *ctx;
	/* pci.c's: */
	bool placed;
	int handle;
	u64 base, size; /* where it traps ([base, base+size): ports, or bytes within the pages) */
};
bool pci_region_place(struct pci_region *r, const struct pci_window *w);
void pci_region_remove(struct pci_region *r);

/* The lowest address of MMIO as found at init: the ECAM window, every memory BAR, and at most
 * PCI_MMIO_CEILING (I/O APIC, HPET, local APIC, firmware flash). Below it is memory. */
#define PCI_MMIO_CEILING 0xFEC00000ull
u64 pci_mmio_floor(void);

/* Guest configuration accesses seen (for the log and tests). */
struct pci_stats {
	u64 addr_writes, data_reads, data_writes, mediated_writes, dropped_writes;
};
extern struct pci_stats pci_stats;

#endif
