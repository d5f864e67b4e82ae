/* The mediated AHCI HBA: shadow command lists and virtual issue/completion registers (see
 * ahci_port.h). */
#include "drivers/ahci/ahci_port.h"
#include "drivers/ata/ata.h"
#include "vmm/gmem.h"
#include "core/log.h"
#include "core/string.h"
#include "core/x86.h"

#define POLL_LIMIT 4000000000ull /* TSC cycles Parapet waits for the HBA (about 1-4 s) */

static u32 rd(const struct ahci_port *p, u32 reg)
{
	return p->hba->hw.rd(p->hba->hw.ctx, AHCI_PORT_BASE(p->index) + reg);
}

static void wr(const struct ahci_port *p, u32 reg, u32 val)
{
	p->hba->hw.wr(p->hba->hw.ctx, AHCI_PORT_BASE(p->index) + reg, val);
}

bool ahci_wait(const struct ahci_hw *hw, u32 off, u32 bits)
{
	u64 t0 = rdtsc();
	while (hw->rd(hw->ctx, off) & bits)
		if (rdtsc() - t0 > POLL_LIMIT)
			return false;
	return true;
}

static bool wait_clear(const struct ahci_port *p, u32 reg, u32 bits)
{
	return ahci_wait(&p->hba->hw, AHCI_PORT_BASE(p->index) + reg, bits);
}

static struct ahci_cmd_header *shadow_header(struct ahci_port *p, unsigned s)
{
	return (struct ahci_cmd_header *)p->list + s;
}

static u8 *shadow_table(struct ahci_port *p, unsigned s)
{
	return p->tables + (u64)s * PAGE_SIZE;
}

/* The device's list and FIS area are the shadows (allowed only while ST and FRE are off). */
static void point_device(struct ahci_port *p, bool list, bool fis)
{
	if (list) {
		wr(p, PX_CLB, (u32)p->list_pa);
		wr(p, PX_CLBU, (u32)(p->list_pa >> 32));
	}
	if (fis) {
		wr(p, PX_FB, (u32)(p->list_pa + AHCI_LIST_FIS));
		wr(p, PX_FBU, (u32)((p->list_pa + AHCI_LIST_FIS) >> 32));
	}
}

/* Stop the port's list and FIS engines; false when the HBA does not within the limit. */
static bool stop(struct ahci_port *p, u32 cmd)
{
	if (cmd & PX_CMD_ST)
		wr(p, PX_CMD, cmd &= ~PX_CMD_ST);
	if (!wait_clear(p, PX_CMD, PX_CMD_CR))
		return false;
	if (cmd & PX_CMD_FRE)
		wr(p, PX_CMD, cmd & ~PX_CMD_FRE);
	return wait_clear(p, PX_CMD, PX_CMD_FR);
}

bool ahci_port_take(struct ahci_hba *hba, unsigned i, u8 *mem, u64 mem_pa, struct ahci_slot *slots)
{
	struct ahci_port *p = &hba->port[i];
	p->hba = hba;
	p->index = (u8)i;
	p->list = mem;
	p->list_pa = mem_pa;
	p->tables = mem + PAGE_SIZE;
	p->tables_pa = mem_pa + PAGE_SIZE;
	p->slot = slots;
	memset(mem, 0, AHCI_PORT_TABLE_BYTES);
	for (unsigned s = 0; s < AHCI_SLOTS; s++) {
		u64 t = p->tables_pa + (u64)s * PAGE_SIZE;
		shadow_header(p, s)->ctba = (u32)t;
		shadow_header(p, s)->ctbau = (u32)(t >> 32);
	}
	p->clb = (u64)rd(p, PX_CLBU) << 32 | rd(p, PX_CLB);
	p->fb = (u64)rd(p, PX_FBU) << 32 | rd(p, PX_FB);
	p->ie = rd(p, PX_IE);
	u32 cmd = rd(p, PX_CMD);
	if (!stop(p, cmd))
		return false;
	p->is = rd(p, PX_IS);
	wr(p, PX_IS, p->is);
	point_device(p, true, true);
	if (cmd & PX_CMD_FRE)
		wr(p, PX_CMD, (cmd & ~PX_CMD_ST) | PX_CMD_FRE);
	if (cmd & PX_CMD_ST)
		wr(p, PX_CMD, cmd);
	p->implemented = true;
	return true;
}

void ahci_port_release(struct ahci_port *p)
{
	u32 cmd = rd(p, PX_CMD);
	if (!stop(p, cmd))
		LOG("ahci: port %u does not stop; left on Parapet's list\n", p->index);
	else {
		wr(p, PX_CLB, (u32)p->clb);
		wr(p, PX_CLBU, (u32)(p->clb >> 32));
		wr(p, PX_FB, (u32)p->fb);
		wr(p, PX_FBU, (u32)(p->fb >> 32));
		if (cmd & PX_CMD_FRE)
			wr(p, PX_CMD, (cmd & ~PX_CMD_ST) | PX_CMD_FRE);
		if (cmd & PX_CMD_ST)
			wr(p, PX_CMD, cmd);
	}
	p->implemented = false;
}

/* Slot s's shadow table and header for the device: FIS (cfl dwords), ATAPI command, and the
 * PRDs, either c's checked buffers or one shadow chunk [pa, pa + len). */
static void emit(struct ahci_port *p, unsigned s, u32 dw0, const u8 *cfis, const struct ahci_cmd *c, u64 pa, u32 len)
{
	u8 *t = shadow_table(p, s);
	memset(t, 0, AHCI_CT_PRDT);
	memcpy(t + AHCI_CT_CFIS, cfis, AHCI_HDR_CFL(dw0) * 4u);
	struct ahci_prd_entry *e = (struct ahci_prd_entry *)(t + AHCI_CT_PRDT);
	unsigned n = 0;
	if (len) {
		e[n++] = (struct ahci_prd_entry){ (u32)pa, (u32)(pa >> 32), 0, len - 1 };
	} else if (c) {
		memcpy(t + AHCI_CT_ACMD, c->acmd, AHCI_ACMD_BYTES);
		for (; n < c->nbuf; n++)
			e[n] = (struct ahci_prd_entry){ (u32)c->buf[n].addr, (u32)(c->buf[n].addr >> 32), 0,
				(c->buf[n].len - 1) | c->buf[n].flags };
	}
	struct ahci_cmd_header *h = shadow_header(p, s);
	h->dw0 = (dw0 & 0xFFFF) | (u32)n << 16;
	h->prdbc = 0;
}

static void start(struct ahci_port *p, unsigned s, bool ncq)
{
	p->active |= 1u << s;
	if (ncq)
		wr(p, PX_SACT, 1u << s);
	wr(p, PX_CI, 1u << s);
}

/* The next chunk of a protected drive's sectors: written data is encrypted in the shadow
 * buffer first. False when the guest's buffers stopped being RAM (the slot is then refused). */
static bool issue_chunk(struct ahci_port *p, unsigned s)
{
	struct ahci_slot *sl = &p->slot[s];
	const struct ahci_cmd *c = &sl->cmd;
	u32 n = c->count - sl->done;
	sl->chunk = n < AHCI_CHUNK_SECTORS ? n : AHCI_CHUNK_SECTORS;
	u64 lba = c->lba + sl->done;
	u8 *buf = p->bounce + (u64)s * AHCI_CHUNK_BYTES;
	u32 bytes = sl->chunk * SECTOR_SIZE;
	if (c->write) {
		if (!ahci_cmd_copy(c, (u64)sl->done * SECTOR_SIZE, buf, bytes, false))
			return false;
		storage_transform(p->sd, lba, buf, sl->chunk, true);
	}
	u8 cfis[AHCI_CFIS_BYTES];
	memcpy(cfis, c->cfis, sizeof(cfis));
	ahci_cmd_set_range(c, cfis, lba, sl->chunk);
	/* Only the FIS length and direction of the guest's header: no PMP, reset or BIST bits. */
	emit(p, s, AHCI_HDR_CFL(c->dw0) | (c->dw0 & AHCI_HDR_W), cfis, NULL, p->bounce_pa + (u64)s * AHCI_CHUNK_BYTES,
	    bytes);
	start(p, s, c->ncq);
	return true;
}

/* Refuse slot s: the device runs NOP (subcommand 0), which ATA8-ACS says it always aborts, so
 * the guest sees its command fail with a task-file error (ERR, ABRT) and an interrupt. */
static void refuse(struct ahci_port *p, unsigned s, const char *why)
{
	if (p->refusals++ < 16)
		LOG("ahci: port %u slot %u: command %02x refused: %s\n", p->index, s, p->slot[s].cmd.cfis[FIS_COMMAND],
		    why);
	static const u8 nop[20] = { FIS_TYPE_H2D, FIS_H2D_C, ATA_CMD_NOP, 0, 0, 0, 0, 0xA0 };
	p->slot[s].refused = true;
	emit(p, s, 5, nop, NULL, 0, 0);
	start(p, s, false);
}

static void issue(struct ahci_port *p, unsigned s)
{
	struct ahci_slot *sl = &p->slot[s];
	struct ahci_cmd *c = &sl->cmd;
	sl->hdr = p->clb + s * sizeof(struct ahci_cmd_header);
	sl->refused = false;
	sl->done = 0;
	const char *why = ahci_cmd_fetch(p->clb, s, c);
	if (!why)
		why = ahci_cmd_check(c, p->sd, (p->sact >> s) & 1);
	if (!why && p->sd && c->ncq && c->cfis[FIS_COUNT] >> 3 != s)
		why = "NCQ tag is not the slot";
	if (why) {
		refuse(p, s, why);
		return;
	}
	sl->kind = c->kind;
	if (c->kind == AHCI_SECTORS) {
		if (!issue_chunk(p, s))
			refuse(p, s, "PRD buffer no longer guest RAM");
		return;
	}
	emit(p, s, c->dw0, c->cfis, c, 0, 0);
	start(p, s, c->ncq);
}

/* The device finished slot s's chunk without error: go on, or complete it for the guest.
 * True when the guest's command is complete. */
static bool finish(struct ahci_port *p, unsigned s)
{
	struct ahci_slot *sl = &p->slot[s];
	u32 prdbc = shadow_header(p, s)->prdbc;
	if (sl->refused) {
		prdbc = 0;
	} else if (sl->kind == AHCI_SECTORS) {
		const struct ahci_cmd *c = &sl->cmd;
		if (!c->write) {
			u8 *buf = p->bounce + (u64)s * AHCI_CHUNK_BYTES;
			storage_transform(p->sd, c->lba + sl->done, buf, sl->chunk, false);
			ahci_cmd_copy(c, (u64)sl->done * SECTOR_SIZE, buf, (u64)sl->chunk * SECTOR_SIZE, true);
		}
		sl->done += sl->chunk;
		if (sl->done < c->count) {
			if (issue_chunk(p, s))
				return false;
			refuse(p, s, "PRD buffer no longer guest RAM");
			return false;
		}
		prdbc = c->count * SECTOR_SIZE;
	}
	u32 *g = gmem_map_dma(sl->hdr + 4, 4);
	if (g)
		__atomic_store_n(g, prdbc, __ATOMIC_RELAXED);
	return true;
}

/* Learn what the device did: its interrupt status moves into the guest's view, finished slots
 * complete. Port lock held. */
static void reap(struct ahci_port *p)
{
	u32 is = rd(p, PX_IS);
	if (is == 0xFFFFFFFF)
		return; /* not decoding (its BAR is moving): nothing to learn now */
	if (is) {
		wr(p, PX_IS, is);
		p->hba->hw.wr(p->hba->hw.ctx, AHCI_IS, 1u << p->index);
	}
	if (!p->active) {
		p->is |= is;
		return;
	}
	u32 done = p->active & ~rd(p, PX_CI) & ~rd(p, PX_SACT);
	u32 completed = 0;
	for (u32 m = done; m; m &= m - 1) {
		unsigned s = (unsigned)__builtin_ctz(m);
		p->active &= ~(1u << s);
		if (finish(p, s))
			completed |= 1u << s;
	}
	p->ci &= ~completed;
	p->sact &= ~completed;
	if (done && !completed)
		is &= ~PX_IS_PROGRESS; /* only chunks of larger transfers finished: not the guest's news */
	p->is |= is;
	if (completed && (rd(p, PX_CMD) & PX_CMD_FRE) && p->fb) {
		u8 *g = gmem_map_dma(p->fb, AHCI_RFIS_BYTES);
		if (g)
			memcpy(g, p->list + AHCI_LIST_FIS, AHCI_RFIS_BYTES);
	}
}

/* Every slot in flight is forgotten (the port stopped, or the HBA was reset). */
static void forget(struct ahci_port *p)
{
	p->active = p->ci = p->sact = 0;
}

bool ahci_port_identify(struct ahci_port *p, u64 buf_pa)
{
	u32 cmd = rd(p, PX_CMD);
	if (!(cmd & PX_CMD_FRE))
		wr(p, PX_CMD, cmd |= PX_CMD_FRE);
	if (!(cmd & PX_CMD_ST))
		wr(p, PX_CMD, cmd | PX_CMD_ST);
	static const u8 identify[20] = { FIS_TYPE_H2D, FIS_H2D_C, ATA_CMD_IDENTIFY, 0, 0, 0, 0, 0xA0 };
	emit(p, 0, 5, identify, NULL, buf_pa, SECTOR_SIZE);
	wr(p, PX_CI, 1);
	u64 t0 = rdtsc();
	bool ok = true;
	while (rd(p, PX_CI) & 1)
		if ((rd(p, PX_IS) & PX_IS_TFES) || rdtsc() - t0 > POLL_LIMIT) {
			ok = false;
			break;
		}
	ok = ok && !(rd(p, PX_TFD) & ATA_STATUS_ERR);
	/* Back as the guest had it: no slot, no interrupt status of Parapet's. */
	stop(p, rd(p, PX_CMD));
	wr(p, PX_IS, rd(p, PX_IS));
	wr(p, PX_SERR, rd(p, PX_SERR));
	p->hba->hw.wr(p->hba->hw.ctx, AHCI_IS, 1u << p->index);
	if (cmd & PX_CMD_FRE)
		wr(p, PX_CMD, (cmd & ~PX_CMD_ST) | PX_CMD_FRE);
	if (cmd & PX_CMD_ST)
		wr(p, PX_CMD, cmd);
	return ok;
}

/* ---- The guest's register accesses ---- */

static u32 port_read(struct ahci_port *p, u32 reg)
{
	if (reg <= PX_FBU) /* CLB, CLBU, FB, FBU: the guest's view */
		return (u32)((reg < PX_FB ? p->clb : p->fb) >> (reg & 4 ? 32 : 0));
	switch (reg) {
	case PX_IS:
		reap(p);
		return p->is;
	case PX_CI:
		reap(p);
		return p->ci;
	case PX_SACT:
		reap(p);
		return p->sact;
	}
	return rd(p, reg);
}

static void port_write(struct ahci_port *p, u32 reg, u32 val)
{
	if (reg <= PX_FBU) { /* the view only; CLB is 1 KiB aligned, FB 256 bytes */
		u64 *v = reg < PX_FB ? &p->clb : &p->fb;
		unsigned sh = reg & 4 ? 32 : 0;
		val &= reg & 4 ? ~0u : reg < PX_FB ? ~0x3FFu : ~0xFFu;
		*v = (*v & ~(0xFFFFFFFFull << sh)) | (u64)val << sh;
		return;
	}
	switch (reg) {
	case PX_IS:
		reap(p);
		p->is &= ~val;
		return;
	case PX_IE:
		p->ie = val;
		break;
	case PX_SACT:
		p->sact |= val; /* the tags of NCQ commands about to be issued */
		return;
	case PX_CI: {
		if (!(rd(p, PX_CMD) & PX_CMD_ST))
			return; /* the HBA ignores issue while the port is stopped */
		reap(p);
		for (u32 m = val & ~p->ci & ~p->active; m; m &= m - 1) {
			unsigned s = (unsigned)__builtin_ctz(m);
			p->ci |= 1u << s;
			issue(p, s);
		}
		return;
	}
	case PX_CMD: {
		reap(p);
		u32 old = rd(p, PX_CMD);
		if ((old & PX_CMD_ST) && !(val & PX_CMD_ST))
			forget(p);
		/* Whenever an engine starts, it starts on the shadows. */
		point_device(p, !(old & PX_CMD_ST) && !(old & PX_CMD_CR), !(old & PX_CMD_FRE) && !(old & PX_CMD_FR));
		break;
	}
	case PX_FBS: /* FIS-based switching: CAP.FBSS reads 0 */
	case 0x1C:
		return;
	default:
		if (reg >= 0x48) /* reserved and vendor specific */
			return;
	}
	wr(p, reg, val);
}

void ahci_lock_ports(struct ahci_hba *h, bool lock)
{
	for (unsigned i = 0; i < AHCI_PORTS_MAX; i++)
		if (h->port[i].implemented) {
			if (lock)
				spin_lock(&h->port[i].lock);
			else
				spin_unlock(&h->port[i].lock);
		}
}

static u32 hba_read(struct ahci_hba *h, u32 off)
{
	if (off == AHCI_CAP)
		return h->hw.rd(h->hw.ctx, off) & ~(AHCI_CAP_SPM | AHCI_CAP_FBSS);
	if (off != AHCI_IS)
		return h->hw.rd(h->hw.ctx, off);
	u32 is = 0;
	for (unsigned i = 0; i < AHCI_PORTS_MAX; i++) {
		struct ahci_port *p = &h->port[i];
		if (!p->implemented)
			continue;
		spin_lock(&p->lock);
		reap(p);
		if (p->is & p->ie)
			is |= 1u << i;
		spin_unlock(&p->lock);
	}
	return is;
}

static void hba_write(struct ahci_hba *h, u32 off, u32 val)
{
	if (off == AHCI_IS || off == AHCI_CAP || off == AHCI_PI)
		return; /* IS is the ports' status; the others are read-only */
	if (off != AHCI_GHC || !(val & AHCI_GHC_HR)) {
		h->hw.wr(h->hw.ctx, off, val);
		return;
	}
	/* HBA reset: every port stops, every slot is forgotten; the device's list and FIS
	 * pointers are the shadows again before anyone can start a port. */
	ahci_lock_ports(h, true);
	h->hw.wr(h->hw.ctx, AHCI_GHC, val);
	ahci_wait(&h->hw, AHCI_GHC, AHCI_GHC_HR);
	for (unsigned i = 0; i < AHCI_PORTS_MAX; i++) {
		struct ahci_port *p = &h->port[i];
		if (!p->implemented)
			continue;
		forget(p);
		p->is = 0;
		p->ie = 0;
		stop(p, rd(p, PX_CMD));
		point_device(p, true, true);
	}
	ahci_lock_ports(h, false);
}

static bool access32(struct ahci_hba *h, u32 off, bool write, u32 *val)
{
	if (off < AHCI_PORT_BASE(0) || off >= AHCI_PORT_END) {
		if (write)
			hba_write(h, off, *val);
		else
			*val = hba_read(h, off);
		return true;
	}
	struct ahci_port *p = &h->port[(off - AHCI_PORT_BASE(0)) / 0x80];
	u32 reg = (off - AHCI_PORT_BASE(0)) % 0x80;
	if (!p->implemented) {
		if (write)
			h->hw.wr(h->hw.ctx, off, *val);
		else
			*val = h->hw.rd(h->hw.ctx, off);
		return true;
	}
	spin_lock(&p->lock);
	if (write)
		port_write(p, reg, *val);
	else
		*val = port_read(p, reg);
	spin_unlock(&p->lock);
	return true;
}

bool ahci_access(struct ahci_hba *h, u32 off, unsigned size, bool write, u64 *val)
{
	if (size == 8 && !(off & 7)) {
		u32 lo = (u32)*val, hi = (u32)(*val >> 32);
		bool ok = access32(h, off, write, &lo) && access32(h, off + 4, write, &hi);
		if (!write)
			*val = (u64)hi << 32 | lo;
		return ok;
	}
	if (size != 4 || (off & 3))
		return false; /* the registers are dwords (AHCI 1.3.1 section 3) */
	u32 v = (u32)*val;
	bool ok = access32(h, off, write, &v);
	if (!write)
		*val = v;
	return ok;
}
