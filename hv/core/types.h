/* Fixed-width types and small helpers for the freestanding hypervisor. */
#ifndef PARAPET_TYPES_H
#define PARAPET_TYPES_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_DOWN(x, a) ((x) & ~((u64)(a)-1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a)-1, (a))
#define KiB(x) ((u64)(x) << 10)
#define MiB(x) ((u64)(x) << 20)
#define GiB(x) ((u64)(x) << 30)
#define PAGE_SIZE ((u64)4096)

#define __packed __attribute__((packed))
#define __aligned(x) __attribute__((aligned(x)))
#define __noreturn __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Host pointer to physical address pa (the host identity-maps physical memory). The empty asm
 * keeps the compiler from reasoning about constant low addresses. */
static inline void *phys_ptr(u64 pa)
{
	void *p;
	__asm__("" : "=r"(p) : "0"(pa));
	return p;
}

#endif
