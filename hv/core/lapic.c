/* The host CPU's local APIC: see lapic.h. */
#include "core/lapic.h"
#include "core/x86.h"

#define BUSY_SPINS 100000u

bool lapic_x2apic(void)
{
	return (rdmsr(MSR_APIC_BASE) & APIC_BASE_EXTD) != 0;
}

static u64 fixed_window; /* nonzero: where every APIC answers, whatever its base */

void lapic_fix_window(u64 pa)
{
	__atomic_store_n(&fixed_window, pa, __ATOMIC_RELEASE);
}

u64 lapic_window_of(u64 apic_base)
{
	u64 fixed = __atomic_load_n(&fixed_window, __ATOMIC_ACQUIRE);
	return fixed ? fixed : apic_base & APIC_BASE_ADDR_MASK;
}

static volatile u32 *reg(u32 off)
{
	/* The host identity-maps all physical memory, the APIC page included. */
	return (volatile u32 *)(lapic_window_of(rdmsr(MSR_APIC_BASE)) + off);
}

u32 lapic_read(u32 off)
{
	if (lapic_x2apic())
		return (u32)rdmsr(MSR_X2APIC_FIRST + off / 16);
	return *reg(off);
}

void lapic_write(u32 off, u32 val)
{
	if (lapic_x2apic())
		wrmsr(MSR_X2APIC_FIRST + off / 16, val);
	else
		*reg(off) = val;
}

u32 lapic_id(void)
{
	u32 id = lapic_read(APIC_ID);
	return lapic_x2apic() ? id : id >> 24;
}

static void wait_idle(volatile u32 *icr)
{
	for (u32 i = 0; i < BUSY_SPINS && (*icr & ICR_BUSY); i++)
		cpu_relax();
}

void lapic_send(u32 dest, u32 lo)
{
	if (lapic_x2apic()) {
		wrmsr(MSR_X2APIC_ICR, (u64)dest << 32 | lo);
		return;
	}
	volatile u32 *icr = reg(APIC_ICR_LO), *hi = reg(APIC_ICR_HI);
	wait_idle(icr);
	u32 saved = *hi;
	*hi = dest << 24;
	*icr = lo;
	wait_idle(icr);
	*hi = saved;
}

void lapic_save(struct lapic_state *s)
{
	s->base = rdmsr(MSR_APIC_BASE);
	if (!(s->base & APIC_BASE_EN))
		return;
	s->svr = lapic_read(APIC_SVR);
	s->tpr = lapic_read(APIC_TPR);
	s->ldr = lapic_x2apic() ? 0 : lapic_read(APIC_LDR);
	s->dfr = lapic_x2apic() ? ~0u : lapic_read(APIC_DFR);
	for (unsigned i = 0; i < 6; i++)
		s->lvt[i] = lapic_read(APIC_LVT_TIMER + 0x10 * i);
}

void lapic_restore(const struct lapic_state *s)
{
	u64 cur = rdmsr(MSR_APIC_BASE);
	if ((cur & APIC_BASE_EXTD) && !(s->base & APIC_BASE_EXTD))
		wrmsr(MSR_APIC_BASE, cur & ~(APIC_BASE_EN | APIC_BASE_EXTD));
	wrmsr(MSR_APIC_BASE, s->base);
	if (!(s->base & APIC_BASE_EN))
		return;
	lapic_write(APIC_SVR, s->svr | SVR_ENABLE); /* LVT masks clear only while enabled */
	lapic_write(APIC_TMICT, 0);
	for (unsigned n = 0; n < 256; n++) { /* end what the guest left in service */
		bool any = false;
		for (unsigned r = 0; r < 8; r++)
			any |= lapic_read(APIC_ISR + 0x10 * r) != 0;
		if (!any)
			break;
		lapic_write(APIC_EOI, 0);
	}
	if (!lapic_x2apic()) {
		lapic_write(APIC_DFR, s->dfr);
		lapic_write(APIC_LDR, s->ldr);
	}
	for (unsigned i = 0; i < 6; i++)
		lapic_write(APIC_LVT_TIMER + 0x10 * i, s->lvt[i]);
	lapic_write(APIC_ESR, 0);
	lapic_write(APIC_TPR, s->tpr);
	lapic_write(APIC_SVR, s->svr);
}

void io_delay_us(u32 us)
{
	while (us--)
		outb(0x80, 0);
}
