// The polling virtio-pci driver (see virtio.h). Layouts from the virtio 1.2 spec, §4.1.
#include "virtio.h"

#define PCI_VENDOR_VIRTIO 0x1af4
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM 0x2c
#define PCI_CAP_POINTER 0x34
#define PCI_CAP_VENDOR 0x09

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

// Common configuration (struct virtio_pci_common_cfg).
#define COMMON_DEVICE_FEATURE_SELECT 0x00
#define COMMON_DEVICE_FEATURE 0x04
#define COMMON_DRIVER_FEATURE_SELECT 0x08
#define COMMON_DRIVER_FEATURE 0x0c
#define COMMON_MSIX_CONFIG 0x10
#define COMMON_NUM_QUEUES 0x12
#define COMMON_DEVICE_STATUS 0x14
#define COMMON_QUEUE_SELECT 0x16
#define COMMON_QUEUE_SIZE 0x18
#define COMMON_QUEUE_MSIX_VECTOR 0x1a
#define COMMON_QUEUE_ENABLE 0x1c
#define COMMON_QUEUE_NOTIFY_OFF 0x1e
#define COMMON_QUEUE_DESC 0x20
#define COMMON_QUEUE_DRIVER 0x28
#define COMMON_QUEUE_DEVICE 0x30

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define NO_VECTOR 0xffff

static void w8(volatile u8 *base, u32 off, u8 v) { *(volatile u8 *)(base + off) = v; }
static void w16(volatile u8 *base, u32 off, u16 v) { *(volatile u16 *)(base + off) = v; }
static void w32(volatile u8 *base, u32 off, u32 v) { *(volatile u32 *)(base + off) = v; }
static u8 r8(volatile u8 *base, u32 off) { return *(volatile u8 *)(base + off); }
static u16 r16(volatile u8 *base, u32 off) { return *(volatile u16 *)(base + off); }
static u32 r32(volatile u8 *base, u32 off) { return *(volatile u32 *)(base + off); }
// 64-bit fields as two 32-bit halves: the spec allows it and every transport takes it.
static void w64(volatile u8 *base, u32 off, u64 v) {
  w32(base, off, (u32)v);
  w32(base, off + 4, (u32)(v >> 32));
}

static u32 config_address(struct pci_function f, u8 offset) {
  return 0x80000000u | ((u32)f.bus << 16) | ((u32)f.device << 11) | ((u32)f.function << 8) | (offset & 0xfc);
}

u32 pci_read32(struct pci_function f, u8 offset) {
  outl(0xcf8, config_address(f, offset));
  return inl(0xcfc);
}

void pci_write32(struct pci_function f, u8 offset, u32 value) {
  outl(0xcf8, config_address(f, offset));
  outl(0xcfc, value);
}

static u8 pci_read8(struct pci_function f, u8 offset) {
  return (u8)(pci_read32(f, offset) >> ((offset & 3) * 8));
}

int virtio_find(u16 type, int nth, struct pci_function *out) {
  for (u8 device = 0; device < 32; device++) {
    struct pci_function f = {0, device, 0};
    u32 id = pci_read32(f, 0);
    if ((id & 0xffff) != PCI_VENDOR_VIRTIO) continue;
    u16 device_id = (u16)(id >> 16);
    // Modern: 0x1040 + type. Transitional (0x1000-0x103f): the subsystem ID is the type.
    int match = device_id == 0x1040 + type ||
                (device_id < 0x1040 && (u16)(pci_read32(f, PCI_SUBSYSTEM) >> 16) == type);
    if (match && nth-- == 0) {
      *out = f;
      return 0;
    }
  }
  return -1;
}

/**
 * BAR `bar`'s address, placing it from *next when firmware left it unassigned or above 4 GiB
 * (the guest maps only the first 4 GiB). 0 when the BAR does not exist.
 */
static u64 place_bar(struct pci_function f, int bar, u64 *next) {
  u8 reg = (u8)(PCI_BAR0 + bar * 4);
  u32 low = pci_read32(f, reg);
  if (low & 1) return 0;  // an I/O BAR: virtio structures live in memory BARs here
  int is64 = ((low >> 1) & 3) == 2;
  u32 high = is64 ? pci_read32(f, (u8)(reg + 4)) : 0;
  u64 address = ((u64)high << 32) | (low & ~0xfu);
  if (address != 0 && high == 0) return address;
  pci_write32(f, reg, 0xffffffff);
  u64 size = ~(u64)(pci_read32(f, reg) & ~0xfu) + 1;
  size &= 0xffffffffu;
  if (size == 0) return 0;
  address = (*next + size - 1) & ~(size - 1);
  *next = address + size;
  pci_write32(f, reg, (u32)address);
  if (is64) pci_write32(f, (u8)(reg + 4), 0);
  put_str("virtio: placed BAR ");
  put_u64((u64)bar);
  put_str(" at ");
  put_hex(address);
  put_str("\n");
  return address;
}

int virtio_open(struct virtio_device *dev, struct pci_function pci, u16 type, u64 bar_base) {
  memset(dev, 0, sizeof *dev);
  dev->pci = pci;
  dev->type = type;
  u32 command = pci_read32(pci, PCI_COMMAND);
  // Decoding off while BARs move; bus mastering on, or QEMU drops the device's DMA.
  pci_write32(pci, PCI_COMMAND, command & 0xffff & ~(u32)PCI_COMMAND_MEMORY);
  u64 bars[6] = {0};
  u64 next = bar_base;
  for (int bar = 0; bar < 6; bar++) {
    bars[bar] = place_bar(pci, bar, &next);
    u32 low = pci_read32(pci, (u8)(PCI_BAR0 + bar * 4));
    if (!(low & 1) && ((low >> 1) & 3) == 2) bar++;  // the high half of a 64-bit BAR
  }
  pci_write32(pci, PCI_COMMAND, (command & 0xffff) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

  if (!((pci_read32(pci, PCI_COMMAND) >> 16) & PCI_STATUS_CAP_LIST)) {
    put_str("virtio: no capability list\n");
    return -1;
  }
  for (u8 at = pci_read8(pci, PCI_CAP_POINTER) & 0xfc; at; at = pci_read8(pci, at + 1) & 0xfc) {
    if (pci_read8(pci, at) != PCI_CAP_VENDOR) continue;
    u8 cfg_type = pci_read8(pci, at + 3);
    u8 bar = pci_read8(pci, at + 4);
    u32 offset = pci_read32(pci, at + 8);
    if (bar > 5 || bars[bar] == 0) continue;
    volatile u8 *base = (volatile u8 *)(bars[bar] + offset);
    if (cfg_type == VIRTIO_PCI_CAP_COMMON_CFG && !dev->common) dev->common = base;
    if (cfg_type == VIRTIO_PCI_CAP_DEVICE_CFG && !dev->device_cfg) dev->device_cfg = base;
    if (cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG && !dev->notify_base) {
      dev->notify_base = base;
      dev->notify_multiplier = pci_read32(pci, at + 16);
    }
  }
  if (!dev->common || !dev->notify_base) {
    put_str("virtio: common or notify capability missing\n");
    return -2;
  }
  w8(dev->common, COMMON_DEVICE_STATUS, 0);
  while (r8(dev->common, COMMON_DEVICE_STATUS) != 0) {
  }
  w8(dev->common, COMMON_DEVICE_STATUS, STATUS_ACKNOWLEDGE);
  w8(dev->common, COMMON_DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  w16(dev->common, COMMON_MSIX_CONFIG, NO_VECTOR);
  return 0;
}

int virtio_negotiate(struct virtio_device *dev, u64 wanted) {
  w32(dev->common, COMMON_DEVICE_FEATURE_SELECT, 0);
  u64 offered = r32(dev->common, COMMON_DEVICE_FEATURE);
  w32(dev->common, COMMON_DEVICE_FEATURE_SELECT, 1);
  offered |= (u64)r32(dev->common, COMMON_DEVICE_FEATURE) << 32;
  u64 features = (wanted | (1ULL << VIRTIO_F_VERSION_1)) & offered;
  if (!(features & (1ULL << VIRTIO_F_VERSION_1))) {
    put_str("virtio: the device does not offer VERSION_1\n");
    return -1;
  }
  w32(dev->common, COMMON_DRIVER_FEATURE_SELECT, 0);
  w32(dev->common, COMMON_DRIVER_FEATURE, (u32)features);
  w32(dev->common, COMMON_DRIVER_FEATURE_SELECT, 1);
  w32(dev->common, COMMON_DRIVER_FEATURE, (u32)(features >> 32));
  u8 status = r8(dev->common, COMMON_DEVICE_STATUS);
  w8(dev->common, COMMON_DEVICE_STATUS, status | STATUS_FEATURES_OK);
  if (!(r8(dev->common, COMMON_DEVICE_STATUS) & STATUS_FEATURES_OK)) {
    put_str("virtio: FEATURES_OK refused\n");
    return -1;
  }
  dev->features = features;
  put_str("virtio: features offered ");
  put_hex(offered);
  put_str(" negotiated ");
  put_hex(features);
  put_str("\n");
  return 0;
}

int virtq_setup(struct virtio_device *dev, struct virtq *q, u16 index, u16 max_size) {
  memset(q, 0, sizeof *q);
  if (index >= r16(dev->common, COMMON_NUM_QUEUES)) return -1;
  w16(dev->common, COMMON_QUEUE_SELECT, index);
  u16 size = r16(dev->common, COMMON_QUEUE_SIZE);
  if (size == 0) return -1;
  while (size > max_size) size /= 2;  // sizes are powers of two
  q->index = index;
  q->size = size;
  q->event_idx = (dev->features >> VIRTIO_F_RING_EVENT_IDX) & 1;
  q->desc = alloc(16ULL * size, 4096);
  q->avail = alloc(6 + 2ULL * size, 4096);
  q->used = alloc(6 + 8ULL * size, 4096);
  if (!q->desc || !q->avail || !q->used) {
    put_str("virtio: out of guest memory for a queue\n");
    return -1;
  }
  // Polling: no interrupts wanted (used_event stays far behind when EVENT_IDX is on).
  q->avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
  w16(dev->common, COMMON_QUEUE_SIZE, size);
  w16(dev->common, COMMON_QUEUE_MSIX_VECTOR, NO_VECTOR);
  w64(dev->common, COMMON_QUEUE_DESC, (u64)q->desc);
  w64(dev->common, COMMON_QUEUE_DRIVER, (u64)q->avail);
  w64(dev->common, COMMON_QUEUE_DEVICE, (u64)q->used);
  u16 notify_off = r16(dev->common, COMMON_QUEUE_NOTIFY_OFF);
  q->notify = (volatile u16 *)(dev->notify_base + (u64)notify_off * dev->notify_multiplier);
  w16(dev->common, COMMON_QUEUE_ENABLE, 1);
  return 0;
}

void virtio_driver_ok(struct virtio_device *dev) {
  u8 status = r8(dev->common, COMMON_DEVICE_STATUS);
  w8(dev->common, COMMON_DEVICE_STATUS, status | STATUS_DRIVER_OK);
}

u8 virtio_status(struct virtio_device *dev) { return r8(dev->common, COMMON_DEVICE_STATUS); }

u8 virtio_config8(struct virtio_device *dev, u32 offset) { return r8(dev->device_cfg, offset); }
u32 virtio_config32(struct virtio_device *dev, u32 offset) { return r32(dev->device_cfg, offset); }
u64 virtio_config64(struct virtio_device *dev, u32 offset) {
  return r32(dev->device_cfg, offset) | ((u64)r32(dev->device_cfg, offset + 4) << 32);
}

void virtq_kick(struct virtq *q) {
  u16 old = q->kicked_idx;
  u16 now = q->avail_idx;
  if (old == now) return;
  compiler_barrier();  // descriptors and ring entries before the index
  q->avail[1] = now;
  full_barrier();  // the index is visible before the device's suppression state is read
  q->kicked_idx = now;
  int needed;
  if (q->event_idx) {
    u16 avail_event = q->used[2 + 4 * q->size];  // after used->ring[size]
    needed = (u16)(now - avail_event - 1) < (u16)(now - old);
  } else {
    needed = !(q->used[0] & VIRTQ_USED_F_NO_NOTIFY);
  }
  if (!needed) {
    q->kicks_suppressed++;
    return;
  }
  *q->notify = q->index;
  q->kicks++;
}
