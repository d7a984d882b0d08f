// virtio-blk polling benchmark: random 4 KiB reads with several in flight, then sequential 1 MiB
// reads, against the first virtio-blk device. Each phase is framed by report lines the harness
// timestamps ("begin NAME", "end NAME ios=... bytes=... errors=... cycles=... kicks=...").
// Parameters (params[PARAM_DEVICE + i]), patched in by bench/virtio-blk.ts:
//   0  random reads to issue        1  random reads in flight
//   2  sequential bytes to read     3  sequential reads in flight
//   4  random seed (nonzero)
// The sequential phase also reports `sum`: the sum of each 1 MiB block's first 64-bit word,
// which the harness checks against the file (the data really came from the disk image).
#include "virtio.h"

#define VIRTIO_BLK_T_IN 0
#define SECTOR 512
#define RANDOM_BLOCK 4096
#define SEQUENTIAL_BLOCK (1u << 20)
#define MAX_DEPTH 64

struct request_header {
  u32 type;
  u32 reserved;
  u64 sector;
};

/** One request slot: three descriptors (header, data, status) at 3 * slot, and its buffers. */
struct slot {
  struct request_header *header;
  u8 *data;
  volatile u8 *status;
};

static struct virtio_device blk;
static struct virtq queue;
static struct slot slots[MAX_DEPTH];
static u64 rng_state;

static u64 next_random(void) {  // xorshift64
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int make_slots(u32 depth, u32 block) {
  for (u32 i = 0; i < depth; i++) {
    struct slot *s = &slots[i];
    s->header = alloc(sizeof *s->header, 16);
    s->data = alloc(block, 4096);
    s->status = alloc(1, 1);
    if (!s->header || !s->data || !s->status) return -1;
    u16 d = (u16)(3 * i);
    virtq_set_desc(&queue, d, (u64)s->header, sizeof *s->header, VIRTQ_DESC_F_NEXT, d + 1);
    virtq_set_desc(&queue, d + 1, (u64)s->data, block, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, d + 2);
    virtq_set_desc(&queue, d + 2, (u64)s->status, 1, VIRTQ_DESC_F_WRITE, 0);
  }
  return 0;
}

static void submit(u32 i, u64 sector) {
  slots[i].header->type = VIRTIO_BLK_T_IN;
  slots[i].header->sector = sector;
  *slots[i].status = 0xff;
  virtq_publish(&queue, (u16)(3 * i));
}

/**
 * `count` reads of `block` bytes, `depth` in flight: at random block-aligned offsets below
 * `limit`, or in order from 0 (wrapping at `limit`). Returns the number of failed requests.
 */
static u64 run_phase(const char *name, u64 count, u32 depth, u32 block, u64 limit, int random) {
  u64 blocks = limit / block;
  u64 next_block = 0;
  u64 submitted = 0, completed = 0, errors = 0, sum = 0;
  u64 kicks = queue.kicks, suppressed = queue.kicks_suppressed;
  put_str("begin ");
  put_str(name);
  put_str("\n");
  u64 started = rdtsc();
  for (u32 i = 0; i < depth && submitted < count; i++, submitted++) {
    u64 b = random ? next_random() % blocks : next_block++ % blocks;
    submit(i, b * (block / SECTOR));
  }
  virtq_kick(&queue);
  while (completed < count) {
    u32 id, len;
    int refilled = 0;
    while (virtq_take_used(&queue, &id, &len)) {
      u32 i = id / 3;
      completed++;
      if (*slots[i].status != 0 || len != block + 1) errors++;
      if (!random) sum += *(volatile u64 *)slots[i].data;
      if (submitted < count) {
        u64 b = random ? next_random() % blocks : next_block++ % blocks;
            submit(i, b * (block / SECTOR));
        submitted++;
        refilled = 1;
      }
    }
    if (refilled) virtq_kick(&queue);
    else __asm__ volatile("pause");
  }
  u64 cycles = rdtsc() - started;
  put_str("end ");
  put_str(name);
  put_str(" ");
  put_field("ios", completed);
  put_field("bytes", completed * block);
  put_field("errors", errors);
  put_field("cycles", cycles);
  put_field("kicks", queue.kicks - kicks);
  put_field("suppressed", queue.kicks_suppressed - suppressed);
  if (!random) put_field("sum", sum);
  put_str("\n");
  return errors;
}

int guest_main_c(const volatile u64 *params) {
  heap_init(params[PARAM_HEAP_END]);
  const volatile u64 *p = params + PARAM_DEVICE;
  u64 random_count = p[0], random_depth = p[1], sequential_bytes = p[2], sequential_depth = p[3];
  rng_state = p[4] ? p[4] : 1;
  if (random_depth == 0 || random_depth > MAX_DEPTH || sequential_depth == 0 || sequential_depth > MAX_DEPTH) {
    put_str("virtio-blk-bench: depths must be 1-64\n");
    return 2;
  }
  struct pci_function pci;
  if (virtio_find(VIRTIO_ID_BLOCK, 0, &pci) != 0) {
    put_str("virtio-blk-bench: no virtio-blk device on bus 0\n");
    return 3;
  }
  if (virtio_open(&blk, pci, VIRTIO_ID_BLOCK, params[PARAM_BAR_BASE]) != 0) return 4;
  if (virtio_negotiate(&blk, 1ULL << VIRTIO_F_RING_EVENT_IDX) != 0) return 5;
  if (virtq_setup(&blk, &queue, 0, 256) != 0) return 6;
  u64 depth = random_depth > sequential_depth ? random_depth : sequential_depth;
  if (3 * depth > queue.size) {
    put_str("virtio-blk-bench: queue too small for that depth\n");
    return 7;
  }
  virtio_driver_ok(&blk);
  u64 capacity = virtio_config64(&blk, 0) * SECTOR;
  put_str("virtio-blk-bench: device 00:");
  put_u64(pci.device);
  put_str(".0 ");
  put_field("capacity", capacity);
  put_field("queue", queue.size);
  put_str("\n");
  if (capacity < SEQUENTIAL_BLOCK) {
    put_str("virtio-blk-bench: the disk is smaller than 1 MiB\n");
    return 8;
  }

  u64 errors = 0;
  if (make_slots((u32)random_depth, RANDOM_BLOCK) != 0) return 9;
  errors += run_phase("random-4k", random_count, (u32)random_depth, RANDOM_BLOCK, capacity, 1);
  if (make_slots((u32)sequential_depth, SEQUENTIAL_BLOCK) != 0) return 9;
  errors += run_phase("sequential-1m", sequential_bytes / SEQUENTIAL_BLOCK, (u32)sequential_depth,
                      SEQUENTIAL_BLOCK, capacity, 0);
  if (virtio_status(&blk) & 0x40) {
    put_str("virtio-blk-bench: the device needs a reset\n");
    return 10;
  }
  return errors ? 1 : 0;
}
