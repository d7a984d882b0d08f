// The shared runtime of the benchmark guests (see guest.h).
#include "guest.h"

extern char _end[];

static u64 heap_next;
static u64 heap_limit;

void *memset(void *dst, int value, u64 n) {
  u8 *d = dst;
  while (n--) *d++ = (u8)value;
  return dst;
}

void *memcpy(void *dst, const void *src, u64 n) {
  u8 *d = dst;
  const u8 *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void put_str(const char *s) {
  while (*s) outb(PORT_BENCH_REPORT, (u8)*s++);
}

void put_u64(u64 value) {
  char digits[21];
  int at = 20;
  digits[at] = 0;
  do {
    digits[--at] = (char)('0' + value % 10);
    value /= 10;
  } while (value);
  put_str(&digits[at]);
}

void put_hex(u64 value) {
  char digits[19];
  int at = 18;
  digits[at] = 0;
  do {
    digits[--at] = "0123456789abcdef"[value & 15];
    value >>= 4;
  } while (value);
  digits[--at] = 'x';
  digits[--at] = '0';
  put_str(&digits[at]);
}

void put_field(const char *key, u64 value) {
  put_str(key);
  put_str("=");
  put_u64(value);
  put_str(" ");
}

void heap_init(u64 end) {
  // Above the image, its .bss and whatever a loader put right after it (QEMU's wrapper at 4 MiB).
  u64 start = ((u64)_end + 0x7fffff) & ~0x3fffffULL;
  heap_next = start < 0x800000 ? 0x800000 : start;
  heap_limit = end;
}

void *alloc(u64 size, u64 align) {
  u64 at = (heap_next + align - 1) & ~(align - 1);
  if (at + size > heap_limit || at + size < at) return 0;
  heap_next = at + size;
  return memset((void *)at, 0, size);
}
