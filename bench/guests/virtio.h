// A polling virtio 1.x driver over PCI for CPL3 benchmark guests: PCI enumeration through
// 0xCF8/0xCFC, BAR placement, the modern transport's capabilities, feature negotiation, split
// queues in guest RAM and notifications through the notify BAR. No interrupts: completions are
// found by polling the used ring (MSI-X vectors are left at NO_VECTOR, INTx is never unmasked).
#pragma once
#include "guest.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_RING_EVENT_IDX 29

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};

struct virtq_used_elem {
  u32 id;
  u32 len;
};

/** One split virtqueue as the driver sees it. */
struct virtq {
  u16 index;
  u16 size;
  struct virtq_desc *desc;
  volatile u16 *avail;   // flags, idx, ring[size], used_event
  volatile u16 *used;    // flags, idx, then struct virtq_used_elem ring[size], avail_event
  volatile u16 *notify;  // this queue's doorbell in the notify BAR
  u16 avail_idx;         // next avail.idx to publish
  u16 kicked_idx;        // avail.idx at the last notification
  u16 last_used;         // next used entry to take
  int event_idx;         // VIRTIO_F_RING_EVENT_IDX negotiated
  u64 kicks;             // notifications written
  u64 kicks_suppressed;  // notifications the device said it did not need
};

struct pci_function {
  u8 bus, device, function;
};

struct virtio_device {
  struct pci_function pci;
  u16 type;
  volatile u8 *common;       // VIRTIO_PCI_CAP_COMMON_CFG
  volatile u8 *device_cfg;   // VIRTIO_PCI_CAP_DEVICE_CFG
  volatile u8 *notify_base;  // VIRTIO_PCI_CAP_NOTIFY_CFG
  u32 notify_multiplier;
  u64 features;              // negotiated
};

u32 pci_read32(struct pci_function f, u8 offset);
void pci_write32(struct pci_function f, u8 offset, u32 value);

/** Finds the `nth` (0-based) virtio device of `type` on bus 0 (modern or transitional IDs). */
int virtio_find(u16 type, int nth, struct pci_function *out);

/**
 * Maps the device: places its BARs (keeping what firmware assigned below 4 GiB; otherwise from
 * bar_base up), enables memory decoding and bus mastering, finds the capabilities, resets it and
 * sets ACKNOWLEDGE | DRIVER. Returns 0, or a negative step number on failure (after a report).
 */
int virtio_open(struct virtio_device *dev, struct pci_function pci, u16 type, u64 bar_base);

/** Offers wanted & device features (VERSION_1 is required) and sets FEATURES_OK. 0 or -1. */
int virtio_negotiate(struct virtio_device *dev, u64 wanted);

/** Sets up queue `index` with up to max_size entries in zeroed guest RAM and enables it. 0 or -1. */
int virtq_setup(struct virtio_device *dev, struct virtq *q, u16 index, u16 max_size);

/** DRIVER_OK: the device may now use the queues. */
void virtio_driver_ok(struct virtio_device *dev);

/** Device status (reads NEEDS_RESET = 0x40 after the device gave up). */
u8 virtio_status(struct virtio_device *dev);

u8 virtio_config8(struct virtio_device *dev, u32 offset);
u32 virtio_config32(struct virtio_device *dev, u32 offset);
u64 virtio_config64(struct virtio_device *dev, u32 offset);

static inline void virtq_set_desc(struct virtq *q, u16 i, u64 addr, u32 len, u16 flags, u16 next) {
  q->desc[i].addr = addr;
  q->desc[i].len = len;
  q->desc[i].flags = flags;
  q->desc[i].next = next;
}

/** Puts a chain head in the avail ring; the device sees it at the next virtq_kick. */
static inline void virtq_publish(struct virtq *q, u16 head) {
  q->avail[2 + (q->avail_idx % q->size)] = head;
  q->avail_idx++;
}

/** Makes published heads visible and notifies the device unless it said it needs no kick. */
void virtq_kick(struct virtq *q);

/** Takes one used element: 1 with id and len set, 0 when the device has completed nothing new. */
static inline int virtq_take_used(struct virtq *q, u32 *id, u32 *len) {
  if (q->used[1] == q->last_used) return 0;
  compiler_barrier();  // the element is read after the index that published it
  const volatile struct virtq_used_elem *ring = (const volatile struct virtq_used_elem *)(q->used + 2);
  const volatile struct virtq_used_elem *e = &ring[q->last_used % q->size];
  *id = e->id;
  *len = e->len;
  q->last_used++;
  return 1;
}
