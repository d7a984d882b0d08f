// What every C benchmark guest has: fixed-width types, port I/O, the report port, the cycle
// counter and a bump allocator over guest RAM. The guest runs at CPL3 with identity paging.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/**
 * Ports: text reports (the Bochs debug port, an isa-debugcon in QEMU; not guest.inc's 0x511,
 * which is QEMU's fw_cfg data port) and a write that ends the run (guest.inc's, isa-debug-exit).
 */
#define PORT_BENCH_REPORT 0xe9
#define PORT_DEBUG_EXIT 0x501

/**
 * params[0..7]: the eight 64-bit words after the entry jump (file offset 8), patched by the
 * harness before the guest is loaded. params[0] and [1] mean the same for every guest; the rest
 * belong to the device part.
 */
#define PARAM_HEAP_END 0  /* guest RAM the allocator may use ends here */
#define PARAM_BAR_BASE 1  /* where to place a BAR that firmware left unassigned or above 4 GiB */
#define PARAM_DEVICE 2    /* params[2..7]: the device part's */

/** The guest's entry point; its return value becomes the debug-exit status (0 = success). */
int guest_main_c(const volatile u64 *params);

static inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
static inline void outl(u16 port, u32 value) { __asm__ volatile("outl %0, %1" ::"a"(value), "Nd"(port)); }
static inline u32 inl(u16 port) {
  u32 value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}
/** Orders the guest's ring stores before a later load (the notification check). */
static inline void full_barrier(void) { __asm__ volatile("mfence" ::: "memory"); }
/** x86 keeps stores in order and loads in order: only the compiler must be stopped. */
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/** Text on the report port: the harness reads it line by line. */
void put_str(const char *s);
void put_u64(u64 value);
void put_hex(u64 value);
/** "key=value " pairs end with put_str("\n"). */
void put_field(const char *key, u64 value);

/** Zeroed memory from the heap (above the guest image, below params[PARAM_HEAP_END]); 0 when full. */
void *alloc(u64 size, u64 align);
void heap_init(u64 end);

void *memset(void *dst, int value, u64 n);
void *memcpy(void *dst, const void *src, u64 n);
