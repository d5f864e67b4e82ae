/*
 * PCI configuration space: enumeration at init (configuration mechanism #1, following
 * bridges), declarative driver matching, and mediation of the guest's configuration accesses
 * (ports 0xCF8/0xCFC-0xCFF, and ECAM pages through io/ecam.c): accesses to devices without a
 * driver pass through unchanged; writes to a bound device go through its driver. See docs/io.md.
 */
#ifndef PARAPET_PCI_H
#define PARAPET_PCI_H

#include "core/types.h"

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

struct pci_dev {
	u8 bus, devfn;
	u16 vendor, device;
	u8 class, subclass, progif;
	u8 header_type;  /* bits 6:0 of the header type register */
	u8 nbars;        /* 6 for type 0, 2 for a bridge */
	u32 bar[6];      /* as last written (tracked): re-read after every landed write */
	u16 command;     /* as last written (tracked) */
	u64 bar_size[6]; /* sized at init; a 64-bit BAR's size is on its low half */
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
