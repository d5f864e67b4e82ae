#include "core/panic.h"
#include "core/log.h"
#include "core/x86.h"

__noreturn void panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("parapet: panic: ", 16);
	log_vprintf(fmt, ap);
	va_end(ap);
	u64 rsp, rbp;
	__asm__ volatile("mov %%rsp, %0; mov %%rbp, %1" : "=r"(rsp), "=r"(rbp));
	log_printf("\nparapet: panic: cpu state: cr0=%lx cr3=%lx cr4=%lx efer=%lx rsp=%lx rbp=%lx caller=%p\n",
	    read_cr0(), read_cr3(), read_cr4(), rdmsr(MSR_EFER), rsp, rbp, __builtin_return_address(0));
	halt_forever();
}
