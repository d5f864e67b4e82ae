/*
 * The channel state machine. The guest's register writes are shadowed and passed on; a command
 * for a protected drive is checked against the policy and then issued by Parapet itself from
 * the shadow (so what the device executes is what was checked); its data moves only through
 * hypervisor memory, where the storage service transforms it.
 */
#include "drivers/ata/ata_channel.h"
#include "core/lapic.h"
#include "core/pgalloc.h"
#include "core/pio.h"
#include "core/string.h"
#include "core/log.h"
#include "core/x86.h"

#define POLL_LIMIT 4000000000ull /* TSC cycles Parapet waits for a split chunk (about 1-4 s) */

void ata_channel_alloc(struct ata_channel *ch)
{
	ch->sh_buf_pa = pgalloc(ATA_SHADOW_BYTES / PAGE_SIZE);
	ch->sh_buf = phys_ptr(ch->sh_buf_pa);
	ch->sh_prdt_pa = pgalloc(PRD_MAX_ENTRIES * sizeof(struct prd) / PAGE_SIZE);
	ch->sh_prdt = phys_ptr(ch->sh_prdt_pa);
	ch->guest = phys_ptr(pgalloc((sizeof(struct prd_list) + PAGE_SIZE - 1) / PAGE_SIZE));
}

static u8 altstatus(struct ata_channel *ch)
{
	return inb(ch->ctl);
}

/* ---- Drive discovery (at start, before the guest runs) ---- */

static bool wait_not_busy(struct ata_channel *ch)
{
	u64 t0 = rdtsc();
	while (altstatus(ch) & ATA_STATUS_BSY)
		if (rdtsc() - t0 > POLL_LIMIT)
			return false;
	return true;
}

void ata_probe(struct ata_channel *ch, unsigned pos)
{
	struct ata_drive *d = &ch->drive[pos];
	outb(ch->ctl, ATA_DEVCTL_NIEN);
	outb(ch->cmd + ATA_REG_DEVICE, 0xA0 | (pos ? ATA_DEV_DEV1 : 0));
	for (int i = 0; i < 4; i++)
		altstatus(ch); /* 400 ns for the selection to settle */
	u8 st = altstatus(ch);
	if (st == 0xFF || st == 0x00 || !wait_not_busy(ch))
		return;
	outb(ch->cmd + ATA_REG_COMMAND, ATA_CMD_IDENTIFY);
	altstatus(ch);
	if (!wait_not_busy(ch))
		return;
	st = inb(ch->cmd + ATA_REG_COMMAND);
	if (st & ATA_STATUS_ERR) {
		/* A packet device aborts IDENTIFY DEVICE and leaves its signature. */
		if (inb(ch->cmd + ATA_REG_LBA_MID) == 0x14 && inb(ch->cmd + ATA_REG_LBA_HIGH) == 0xEB)
			d->present = d->atapi = true;
		return;
	}
	if (!(st & ATA_STATUS_DRQ))
		return;
	u16 id[256];
	insw(ch->cmd, id, 256);
	d->present = true;
	for (int i = 0; i < 10; i++) { /* words 10-19, two characters a word, high byte first */
		d->serial[2 * i] = (char)(id[10 + i] >> 8);
		d->serial[2 * i + 1] = (char)id[10 + i];
	}
}

void ata_channel_reset(struct ata_channel *ch)
{
	outb(ch->ctl, ATA_DEVCTL_SRST | ATA_DEVCTL_NIEN);
	io_delay_us(10); /* SRST held at least 5 us */
	outb(ch->ctl, ATA_DEVCTL_NIEN);
	io_delay_us(2000); /* BSY is set within 2 ms */
	wait_not_busy(ch);
}

/* ---- Issuing commands ---- */

/* Refuse the command in progress: the device aborts a NOP (ATA8-ACS: NOP subcommand 0 is always
 * aborted), so the guest sees ERR/ABRT and an interrupt, the way its driver expects. */
static void refuse(struct ata_channel *ch, const char *why)
{
	if (ch->refused++ < 16)
		LOG("ata: ch%u: command %02x refused: %s\n", ch->index, ch->op, why);
	outb(ch->cmd + ATA_REG_FEATURE, 0);
	outb(ch->cmd + ATA_REG_COMMAND, ATA_CMD_NOP);
	ch->state = CH_REFUSED;
	ch->bm_virt = 0;
}

/* Program the whole task file for sectors [lba, lba + n) of the command's drive, then the
 * command: the device executes exactly what was checked, whatever the guest left there. */
static void issue(struct ata_channel *ch, u64 lba, u32 n)
{
	u16 p = ch->cmd;
	u8 dev = (ch->pos ? ATA_DEV_DEV1 : 0) | 0xA0 | ATA_DEV_LBA;
	if (ch->lba48) {
		outb(p + ATA_REG_DEVICE, dev);
		outb(p + ATA_REG_FEATURE, ch->tf.feature[1]);
		outb(p + ATA_REG_FEATURE, ch->tf.feature[0]);
		outb(p + ATA_REG_COUNT, (u8)(n >> 8));
		outb(p + ATA_REG_COUNT, (u8)n);
		outb(p + ATA_REG_LBA_LOW, (u8)(lba >> 24));
		outb(p + ATA_REG_LBA_LOW, (u8)lba);
		outb(p + ATA_REG_LBA_MID, (u8)(lba >> 32));
		outb(p + ATA_REG_LBA_MID, (u8)(lba >> 8));
		outb(p + ATA_REG_LBA_HIGH, (u8)(lba >> 40));
		outb(p + ATA_REG_LBA_HIGH, (u8)(lba >> 16));
	} else {
		outb(p + ATA_REG_DEVICE, dev | (u8)((lba >> 24) & 0x0F));
		outb(p + ATA_REG_FEATURE, ch->tf.feature[0]);
		outb(p + ATA_REG_COUNT, (u8)n); /* 256 is written as 0 */
		outb(p + ATA_REG_LBA_LOW, (u8)lba);
		outb(p + ATA_REG_LBA_MID, (u8)(lba >> 8));
		outb(p + ATA_REG_LBA_HIGH, (u8)(lba >> 16));
	}
	outb(p + ATA_REG_COMMAND, ch->op);
}

/* ---- Bus-master DMA ---- */

static void bm_stop(struct ata_channel *ch)
{
	outb(ch->bm + BM_REG_COMMAND, ch->to_mem ? BM_CMD_TO_MEMORY : 0);
}

/* Start the device on `chunk` sectors from sector `done` of the command, through the shadow. */
static void chunk_start(struct ata_channel *ch, u32 chunk)
{
	u64 bytes = (u64)chunk * SECTOR_SIZE;
	if (!ch->to_mem) {
		prd_copy(ch->guest, (u64)ch->done * SECTOR_SIZE, ch->sh_buf, bytes, false);
		storage_transform(ch->sd, ch->lba + ch->done, ch->sh_buf, chunk, true);
	}
	prd_build(ch->sh_prdt, PRD_MAX_ENTRIES, ch->sh_buf_pa, bytes);
	ch->chunk = chunk;
	outl(ch->bm + BM_REG_PRDT, (u32)ch->sh_prdt_pa);
	issue(ch, ch->lba + ch->done, chunk);
	outb(ch->bm + BM_REG_COMMAND, BM_CMD_START | (ch->to_mem ? BM_CMD_TO_MEMORY : 0));
	ch->armed = true;
}

/* The running chunk ended with bus-master status st: hand the data over on success. */
static void chunk_end(struct ata_channel *ch, u8 st)
{
	ch->armed = false;
	bool ok = !(st & BM_STATUS_ERROR) && !(altstatus(ch) & (ATA_STATUS_ERR | ATA_STATUS_DF));
	if (ch->sd && ok && ch->to_mem) {
		storage_transform(ch->sd, ch->lba + ch->done, ch->sh_buf, ch->chunk, false);
		prd_copy(ch->guest, (u64)ch->done * SECTOR_SIZE, ch->sh_buf, (u64)ch->chunk * SECTOR_SIZE, true);
	}
	if (ch->sd) {
		ch->done += ch->chunk;
		ch->state = CH_IDLE;
	}
}

/* Called on every status access the guest makes: notices that the device finished. */
static void dma_poll(struct ata_channel *ch)
{
	if (!ch->armed)
		return;
	u8 st = inb(ch->bm + BM_REG_STATUS);
	if (!(st & BM_STATUS_ACTIVE))
		chunk_end(ch, st);
}

/* A transfer larger than the shadow: all chunks but the last run here, synchronously, with the
 * device's interrupt masked; the last runs like any other transfer. Bounded by POLL_LIMIT. */
static bool run_split_chunks(struct ata_channel *ch)
{
	u8 guest_devctl = ch->devctl;
	outb(ch->ctl, guest_devctl | ATA_DEVCTL_NIEN);
	bool ok = true;
	while (ok && ch->left - ch->done > ATA_SHADOW_SECTORS) {
		chunk_start(ch, ATA_SHADOW_SECTORS);
		ch->state = CH_DMA_WAIT;
		u64 t0 = rdtsc();
		u8 st;
		while ((st = inb(ch->bm + BM_REG_STATUS)) & BM_STATUS_ACTIVE)
			if (rdtsc() - t0 > POLL_LIMIT)
				break;
		bm_stop(ch);
		ok = !(st & BM_STATUS_ACTIVE) && wait_not_busy(ch);
		inb(ch->cmd + ATA_REG_COMMAND); /* acknowledge */
		outb(ch->bm + BM_REG_STATUS, BM_STATUS_INTR | BM_STATUS_ERROR);
		if (ok) {
			ok = !(st & BM_STATUS_ERROR) && !(altstatus(ch) & (ATA_STATUS_ERR | ATA_STATUS_DF));
			chunk_end(ch, st);
		} else {
			ch->armed = false;
		}
	}
	outb(ch->ctl, guest_devctl);
	return ok;
}

/* The guest started the engine for a held protected command: check its table, then go. */
static void arm_protected(struct ata_channel *ch)
{
	ch->bm_pending = false;
	const char *err = prd_fetch(ch->prdt, ch->guest);
	if (!err && ch->guest->total < (u64)ch->left * SECTOR_SIZE)
		err = "PRD table smaller than the transfer";
	if (!err && !!(ch->bm_cmd & BM_CMD_TO_MEMORY) != ch->to_mem)
		err = "bus-master direction does not match the command";
	if (err) {
		refuse(ch, err);
		ch->bm_virt = BM_STATUS_INTR | BM_STATUS_ERROR;
		return;
	}
	ch->done = 0;
	if (ch->left > ATA_SHADOW_SECTORS && !run_split_chunks(ch)) {
		refuse(ch, "split transfer failed");
		ch->bm_virt = BM_STATUS_INTR | BM_STATUS_ERROR;
		return;
	}
	chunk_start(ch, ch->left - ch->done);
	ch->state = CH_DMA_WAIT;
}

/* DMA of a drive no policy names: the data goes straight to the guest's buffers, but through a
 * shadow copy of its checked table, so it cannot reach Parapet's memory now or later. */
static void arm_passthrough(struct ata_channel *ch)
{
	const char *err = prd_fetch(ch->prdt, ch->guest);
	if (err) {
		if (ch->refused++ < 16)
			LOG("ata: ch%u: DMA not started: %s\n", ch->index, err);
		ch->bm_virt = BM_STATUS_INTR | BM_STATUS_ERROR;
		return;
	}
	prd_emit(ch->guest, ch->sh_prdt);
	ch->sd = NULL;
	ch->to_mem = ch->bm_cmd & BM_CMD_TO_MEMORY;
	outl(ch->bm + BM_REG_PRDT, (u32)ch->sh_prdt_pa);
	outb(ch->bm + BM_REG_COMMAND, ch->bm_cmd);
	ch->armed = true;
}

/* The drive the device itself has selected (a selection written while it was busy is ignored by
 * the device, so the shadow cannot be trusted for this). */
static unsigned selected(struct ata_channel *ch)
{
	return (inb(ch->cmd + ATA_REG_DEVICE) & ATA_DEV_DEV1) ? 1 : 0;
}

static void bm_command_write(struct ata_channel *ch, u8 v)
{
	bool was = ch->bm_cmd & BM_CMD_START, now = v & BM_CMD_START;
	ch->bm_cmd = v & (BM_CMD_START | BM_CMD_TO_MEMORY);
	if (!was && now) {
		if (ch->state == CH_REFUSED)
			ch->bm_virt = BM_STATUS_INTR;
		else if (ch->state == CH_DMA_WAIT && !ch->armed)
			arm_protected(ch);
		else if (ch->drive[selected(ch)].sd && !ch->drive[selected(ch)].atapi)
			ch->bm_pending = true; /* its command comes next */
		else
			arm_passthrough(ch);
	} else if (was && !now) {
		ch->bm_pending = false;
		dma_poll(ch);
		if (ch->armed) { /* stopped mid-transfer: nothing is handed over */
			ch->armed = false;
			ch->state = CH_IDLE;
		}
		outb(ch->bm + BM_REG_COMMAND, ch->bm_cmd);
	} else if (!now) {
		outb(ch->bm + BM_REG_COMMAND, ch->bm_cmd);
	}
}

/* ---- The command register ---- */

static void command_write(struct ata_channel *ch, u8 op)
{
	unsigned pos = selected(ch);
	const struct storage_drive *sd = ch->drive[pos].atapi ? NULL : ch->drive[pos].sd;
	if (!sd) {
		outb(ch->cmd + ATA_REG_COMMAND, op); /* a drive no policy names passes untouched */
		ch->state = CH_IDLE;
		return;
	}
	if (altstatus(ch) & (ATA_STATUS_BSY | ATA_STATUS_DRQ))
		return; /* the device ignores it; so do we */
	dma_poll(ch);   /* a finished transfer is handed over first */
	if (ch->armed) {
		bm_stop(ch);
		ch->armed = false;
	}
	struct ata_cmd_info info = ata_classify(op, ch->tf.feature[0]);
	ch->op = op;
	ch->pos = (u8)pos;
	ch->lba48 = info.lba48;
	ch->sd = sd;
	ch->state = CH_IDLE;
	u64 lba;
	u32 count;
	switch (info.kind) {
	case ATA_NONDATA:
	case ATA_PIO_IN_INFO:
		outb(ch->cmd + ATA_REG_COMMAND, op);
		return;
	case ATA_REFUSE:
		refuse(ch, "not allowed on a protected drive");
		return;
	}
	if (!ata_tf_range(&ch->tf, info.lba48, &lba, &count)) {
		refuse(ch, "CHS addressing on a protected drive");
		return;
	}
	if (!storage_allowed(sd, lba, count)) {
		refuse(ch, "sectors denied by the policy");
		return;
	}
	ch->lba = lba;
	ch->left = count;
	ch->off = 0;
	ch->loaded = false;
	switch (info.kind) {
	case ATA_PIO_IN:
	case ATA_PIO_OUT:
		ch->state = info.kind == ATA_PIO_IN ? CH_PIO_IN : CH_PIO_OUT;
		issue(ch, lba, count);
		return;
	default:
		if (!ch->bm) {
			refuse(ch, "no bus-master block");
			return;
		}
		ch->to_mem = info.kind == ATA_DMA_IN;
		ch->state = CH_DMA_WAIT;
		if (ch->bm_pending)
			arm_protected(ch);
	}
}

/* ---- PIO data ---- */

static bool data_ready(struct ata_channel *ch)
{
	return (altstatus(ch) & (ATA_STATUS_BSY | ATA_STATUS_DRQ)) == ATA_STATUS_DRQ;
}

/* Guest reads n bytes of protected sector data. */
static void pio_in(struct ata_channel *ch, u8 *buf, unsigned n)
{
	while (n) {
		if (ch->state != CH_PIO_IN) {
			memset(buf, 0xFF, n);
			return;
		}
		if (!ch->loaded) {
			if (!data_ready(ch)) {
				memset(buf, 0xFF, n);
				return;
			}
			insw(ch->cmd, ch->sector, SECTOR_SIZE / 2);
			storage_transform(ch->sd, ch->lba, ch->sector, 1, false);
			ch->loaded = true;
			ch->off = 0;
		}
		unsigned k = SECTOR_SIZE - ch->off < n ? SECTOR_SIZE - ch->off : n;
		memcpy(buf, ch->sector + ch->off, k);
		buf += k, n -= k, ch->off += k;
		if (ch->off == SECTOR_SIZE) {
			ch->loaded = false;
			ch->lba++;
			if (--ch->left == 0)
				ch->state = CH_IDLE;
		}
	}
}

/* Guest writes n bytes of protected sector data: whole sectors go to the device encrypted. */
static void pio_out(struct ata_channel *ch, const u8 *buf, unsigned n)
{
	while (n && ch->state == CH_PIO_OUT) {
		unsigned k = SECTOR_SIZE - ch->off < n ? SECTOR_SIZE - ch->off : n;
		memcpy(ch->sector + ch->off, buf, k);
		buf += k, n -= k, ch->off += k;
		if (ch->off < SECTOR_SIZE)
			break;
		ch->off = 0;
		if (!data_ready(ch))
			continue; /* the device takes no data now: dropped */
		storage_transform(ch->sd, ch->lba, ch->sector, 1, true);
		outsw(ch->cmd, ch->sector, SECTOR_SIZE / 2);
		ch->lba++;
		if (--ch->left == 0)
			ch->state = CH_IDLE;
	}
}

static inline bool pio_mediated(const struct ata_channel *ch)
{
	return ch->state == CH_PIO_IN || ch->state == CH_PIO_OUT;
}

static u8 raw_byte(u16 p, bool in, u8 v)
{
	if (in)
		return inb(p);
	outb(p, v);
	return 0;
}

/* Registers other than data are bytes: a wider access is taken byte by byte, in order, each
 * byte going to `fn` (ports outside the block the hook covers pass through). */
typedef u8 (*byte_fn)(struct ata_channel *ch, u16 port, bool in, u8 val);

static u32 bytewise(struct ata_channel *ch, u16 port, unsigned size, bool in, u32 val, byte_fn fn)
{
	u32 out = 0;
	for (unsigned i = 0; i < size; i++)
		out |= (u32)fn(ch, (u16)(port + i), in, (u8)(val >> (8 * i))) << (8 * i);
	return out;
}

unsigned ata_data_str(void *ctx, u16 port, unsigned size, bool in, u8 *buf, unsigned count)
{
	struct ata_channel *ch = ctx;
	if (port != ch->cmd + ATA_REG_DATA)
		return 0;
	spin_lock(&ch->lock);
	if (in && ch->state == CH_PIO_IN)
		pio_in(ch, buf, size * count);
	else if (!in && ch->state == CH_PIO_OUT)
		pio_out(ch, buf, size * count);
	else if (pio_mediated(ch) && in)
		memset(buf, 0xFF, size * count); /* wrong direction: nothing moves */
	else if (!pio_mediated(ch))
		for (unsigned i = 0; i < count * size; i += size) {
			u32 v = 0;
			memcpy(&v, buf + i, size);
			if (size == 4)
				in ? (void)(v = inl(port)) : outl(port, v);
			else if (size == 2)
				in ? (void)(v = inw(port)) : outw(port, (u16)v);
			else
				v = raw_byte(port, in, (u8)v);
			if (in)
				memcpy(buf + i, &v, size);
		}
	spin_unlock(&ch->lock);
	return count;
}

/* ---- Register hooks ---- */

static u8 cmd_byte(struct ata_channel *ch, u16 port, bool in, u8 val)
{
	if (port <= ch->cmd || port >= ch->cmd + ATA_CMD_PORTS)
		return port == ch->cmd ? 0xFF : raw_byte(port, in, val); /* a data byte in a wide access */
	unsigned reg = port - ch->cmd;
	if (in) {
		u8 v = inb(port);
		if (reg == ATA_REG_COMMAND)
			dma_poll(ch);
		return v;
	}
	if (reg == ATA_REG_COMMAND) {
		command_write(ch, val);
		return 0;
	}
	ata_tf_write(&ch->tf, reg, val);
	outb(port, val);
	return 0;
}

u32 ata_cmd_io(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	struct ata_channel *ch = ctx;
	if (port == ch->cmd + ATA_REG_DATA) {
		ata_data_str(ctx, port, size, in, (u8 *)&val, 1);
		return val;
	}
	spin_lock(&ch->lock);
	u32 out = bytewise(ch, port, size, in, val, cmd_byte);
	spin_unlock(&ch->lock);
	return out;
}

static u8 ctl_byte(struct ata_channel *ch, u16 port, bool in, u8 val)
{
	if (port != ch->ctl)
		return raw_byte(port, in, val);
	if (in) {
		u8 v = inb(port);
		dma_poll(ch);
		return v;
	}
	if ((val & ATA_DEVCTL_SRST) && !(ch->devctl & ATA_DEVCTL_SRST)) { /* software reset */
		if (ch->armed && ch->bm)
			bm_stop(ch);
		ch->armed = ch->bm_pending = false;
		ch->state = CH_IDLE;
		ch->bm_virt = 0;
	}
	ch->devctl = val;
	outb(port, val);
	return 0;
}

u32 ata_ctl_io(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	struct ata_channel *ch = ctx;
	spin_lock(&ch->lock);
	u32 out = bytewise(ch, port, size, in, val, ctl_byte);
	spin_unlock(&ch->lock);
	return out;
}

static u8 bm_byte(struct ata_channel *ch, u16 port, bool in, u8 val)
{
	unsigned reg = port - ch->bm;
	switch (reg) {
	case BM_REG_COMMAND:
		if (in)
			return ch->bm_cmd | (inb(port) & ~(BM_CMD_START | BM_CMD_TO_MEMORY));
		bm_command_write(ch, val);
		return 0;
	case BM_REG_STATUS:
		if (in) {
			dma_poll(ch);
			return inb(port) | ch->bm_virt | (ch->armed ? BM_STATUS_ACTIVE : 0);
		}
		ch->bm_virt &= ~(val & (BM_STATUS_INTR | BM_STATUS_ERROR));
		outb(port, val);
		return 0;
	case BM_REG_PRDT ... BM_REG_PRDT + 3: { /* kept here; the device gets the shadow's */
		unsigned sh = 8 * (reg - BM_REG_PRDT);
		if (in)
			return (u8)(ch->prdt >> sh);
		ch->prdt = (ch->prdt & ~(0xFFu << sh)) | (u32)val << sh;
		return 0;
	}
	}
	return raw_byte(port, in, val);
}

/* The bus-master block of both channels (ctx is the array of two channels). */
static u8 bm_any_byte(struct ata_channel *chs, u16 port, bool in, u8 val)
{
	for (unsigned c = 0; c < 2; c++) {
		struct ata_channel *ch = &chs[c];
		if (ch->bm && port >= ch->bm && port < ch->bm + BM_PORTS) {
			spin_lock(&ch->lock);
			u8 r = bm_byte(ch, port, in, val);
			spin_unlock(&ch->lock);
			return r;
		}
	}
	return raw_byte(port, in, val);
}

u32 ata_bm_io(void *ctx, u16 port, unsigned size, bool in, u32 val)
{
	return bytewise(ctx, port, size, in, val, bm_any_byte);
}
