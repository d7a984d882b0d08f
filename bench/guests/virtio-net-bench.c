// virtio-net polling benchmark: UDP over IPv4 from the guest to a peer on the host side of the
// backend (passt's gateway address, which passt maps to the host's loopback; or the far end of a
// tap), with no guest kernel and no interrupts. Phases, each framed by report lines the harness
// timestamps ("begin NAME tsc=...", "end NAME frames=... bytes=... cycles=... tsc=..."):
//   tx-small  UDP datagrams in 60-byte frames to the sink port (packets per second)
//   tx-large  UDP datagrams in 1514-byte frames to the sink port (throughput)
//   echo      1514-byte datagrams to the echo port, `window` in flight, each reply sends the next
//             (both directions through device and backend)
// Before the phases the guest ARPs for the peer. Every frame the device delivers is taken and its
// buffer given back at once, so the receive ring never runs dry.
// Parameters (params[PARAM_DEVICE + i]), patched in by bench/virtio-net.ts:
//   0  guest IPv4 << 32 | peer IPv4 (each as a.b.c.d = a << 24 | ...)
//   1  sink UDP port << 16 | echo UDP port
//   2  tx-small frames    3  tx-large frames    4  echo round trips    5  echo window
#include "virtio.h"

#define VIRTIO_NET_F_MAC 5
#define NET_HDR 12
#define RX_BUFFER 2048
#define QUEUE 256
#define ETH_HLEN 14
#define SMALL_FRAME 60
#define LARGE_FRAME 1514
#define MAX_WINDOW 64
/** A round trip this many TSC cycles late counts as lost (about a second). */
#define ECHO_TIMEOUT_CYCLES 3000000000ULL

static struct virtio_device net;
static struct virtq rxq, txq;
static u8 *rx_buffers[QUEUE];
static u8 *tx_frames[QUEUE];
static u8 guest_mac[6], peer_mac[6];
static u32 guest_ip, peer_ip;
static u16 sink_port, echo_port;
static u16 tx_free[QUEUE];
static u32 tx_free_count;
static u64 echo_replies, echo_foreign;

static void put16(u8 *p, u16 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}
static void put32(u8 *p, u32 v) {
  put16(p, (u16)(v >> 16));
  put16(p + 2, (u16)v);
}
static u16 get16(const volatile u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32(const volatile u8 *p) { return (u32)get16(p) << 16 | get16(p + 2); }

static u16 ip_checksum(const u8 *p, u32 n) {
  u32 sum = 0;
  for (u32 i = 0; i + 1 < n; i += 2) sum += (u32)(p[i] << 8 | p[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (u16)~sum;
}

/** A UDP datagram in an Ethernet frame of `frame_len` bytes after the virtio-net header. */
static void build_udp(u8 *buffer, u32 frame_len, u16 src_port, u16 dst_port, u32 sequence) {
  memset(buffer, 0, NET_HDR);
  u8 *f = buffer + NET_HDR;
  memcpy(f, peer_mac, 6);
  memcpy(f + 6, guest_mac, 6);
  put16(f + 12, 0x0800);
  u8 *ip = f + ETH_HLEN;
  u32 ip_len = frame_len - ETH_HLEN;
  ip[0] = 0x45;
  ip[1] = 0;
  put16(ip + 2, (u16)ip_len);
  put16(ip + 4, 0);
  put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64;
  ip[9] = 17;
  put16(ip + 10, 0);
  put32(ip + 12, guest_ip);
  put32(ip + 16, peer_ip);
  put16(ip + 10, ip_checksum(ip, 20));
  u8 *udp = ip + 20;
  put16(udp, src_port);
  put16(udp + 2, dst_port);
  put16(udp + 4, (u16)(ip_len - 20));
  put16(udp + 6, 0);  // no checksum (allowed for UDP over IPv4)
  put32(udp + 8, sequence);
}

static void post_rx(u16 i) {
  virtq_set_desc(&rxq, i, (u64)rx_buffers[i], RX_BUFFER, VIRTQ_DESC_F_WRITE, 0);
  virtq_publish(&rxq, i);
}

/** Sends the frame in tx slot `slot` (not kicked yet). */
static void send_slot(u16 slot, u32 frame_len) {
  virtq_set_desc(&txq, slot, (u64)tx_frames[slot], NET_HDR + frame_len, 0, 0);
  virtq_publish(&txq, slot);
}

/** Takes completed transmits back into the free list; returns how many. */
static u32 reap_tx(void) {
  u32 id, len, n = 0;
  while (virtq_take_used(&txq, &id, &len)) {
    tx_free[tx_free_count++] = (u16)id;
    n++;
  }
  return n;
}

/**
 * Takes received frames and gives their buffers back. An ARP reply from the peer sets peer_mac; a
 * UDP datagram from the echo port counts as an echo reply. Returns the frames taken.
 */
static u32 poll_rx(void) {
  u32 id, len, n = 0;
  while (virtq_take_used(&rxq, &id, &len)) {
    n++;
    const volatile u8 *f = rx_buffers[id] + NET_HDR;
    if (len >= NET_HDR + 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 2 && get32(f + 28) == peer_ip) {
      for (int i = 0; i < 6; i++) peer_mac[i] = f[22 + i];
    } else if (len >= NET_HDR + 42 && get16(f + 12) == 0x0800 && f[23] == 17) {
      const volatile u8 *udp = f + ETH_HLEN + (f[14] & 0xf) * 4;
      if (get16(udp) == echo_port) echo_replies++;
      else echo_foreign++;
    }
    post_rx((u16)id);
  }
  if (n) virtq_kick(&rxq);
  return n;
}

static int arp_for_peer(void) {
  u8 *b = tx_frames[0];
  memset(b, 0, NET_HDR + SMALL_FRAME);
  u8 *f = b + NET_HDR;
  memset(f, 0xff, 6);
  memcpy(f + 6, guest_mac, 6);
  put16(f + 12, 0x0806);
  put16(f + 14, 1);
  put16(f + 16, 0x0800);
  f[18] = 6;
  f[19] = 4;
  put16(f + 20, 1);
  memcpy(f + 22, guest_mac, 6);
  put32(f + 28, guest_ip);
  put32(f + 38, peer_ip);
  for (int attempt = 0; attempt < 10; attempt++) {
    tx_free_count = 0;
    send_slot(0, SMALL_FRAME);
    virtq_kick(&txq);
    u64 started = rdtsc();
    while (rdtsc() - started < ECHO_TIMEOUT_CYCLES) {
      reap_tx();
      poll_rx();
      if (peer_mac[0] | peer_mac[1] | peer_mac[2] | peer_mac[3] | peer_mac[4] | peer_mac[5]) return 0;
      __asm__ volatile("pause");
    }
  }
  return -1;
}

/** Phase lines carry the TSC, so the harness can turn cycles into seconds (timeSource). */
static void begin(const char *name) {
  put_str("begin ");
  put_str(name);
  put_str(" ");
  put_field("tsc", rdtsc());
  put_str("\n");
}

static void end(const char *name, u64 frames, u64 bytes, u64 cycles) {
  put_str("end ");
  put_str(name);
  put_str(" ");
  put_field("frames", frames);
  put_field("bytes", bytes);
  put_field("cycles", cycles);
  put_field("txkicks", txq.kicks);
  put_field("rxkicks", rxq.kicks);
  put_field("tsc", rdtsc());
}

/** `count` datagrams of `frame_len`-byte frames to the sink, as fast as the ring takes them. */
static void transmit_phase(const char *name, u64 count, u32 frame_len) {
  tx_free_count = 0;
  for (u16 i = 0; i < QUEUE; i++) {
    build_udp(tx_frames[i], frame_len, 40000, sink_port, i);
    tx_free[tx_free_count++] = i;
  }
  u64 sent = 0, done = 0;
  begin(name);
  u64 started = rdtsc();
  while (done < count) {
    int queued = 0;
    while (tx_free_count > 0 && sent < count) {
      u16 slot = tx_free[--tx_free_count];
      put32(tx_frames[slot] + NET_HDR + ETH_HLEN + 28, (u32)sent);
      send_slot(slot, frame_len);
      sent++;
      queued = 1;
    }
    if (queued) virtq_kick(&txq);
    u32 reaped = reap_tx();
    done += reaped;
    poll_rx();
    if (!queued && !reaped) __asm__ volatile("pause");
  }
  end(name, done, done * frame_len, rdtsc() - started);
  put_str("\n");
}

/** Round trips through the echo server, `window` in flight; a round trip timed out is lost. */
static void echo_phase(u64 count, u32 window) {
  tx_free_count = 0;
  for (u16 i = 0; i < QUEUE; i++) {
    build_udp(tx_frames[i], LARGE_FRAME, 40001, echo_port, i);
    tx_free[tx_free_count++] = i;
  }
  echo_replies = 0;
  u64 sent = 0, lost = 0, last_progress;
  begin("echo");
  u64 started = rdtsc();
  last_progress = started;
  u64 seen = 0;
  while (echo_replies + lost < count) {
    int queued = 0;
    while (sent - echo_replies - lost < window && sent < count && tx_free_count > 0) {
      u16 slot = tx_free[--tx_free_count];
      send_slot(slot, LARGE_FRAME);
      sent++;
      queued = 1;
    }
    if (queued) virtq_kick(&txq);
    reap_tx();
    poll_rx();
    u64 now = rdtsc();
    if (echo_replies != seen) {
      seen = echo_replies;
      last_progress = now;
    } else if (now - last_progress > ECHO_TIMEOUT_CYCLES) {
      lost += sent - echo_replies - lost;  // the whole window is given up on
      last_progress = now;
    } else if (!queued) {
      __asm__ volatile("pause");
    }
  }
  end("echo", echo_replies, echo_replies * LARGE_FRAME * 2, rdtsc() - started);
  put_field("lost", lost);
  put_field("foreign", echo_foreign);
  put_str("\n");
}

int guest_main_c(const volatile u64 *params) {
  heap_init(params[PARAM_HEAP_END]);
  const volatile u64 *p = params + PARAM_DEVICE;
  guest_ip = (u32)(p[0] >> 32);
  peer_ip = (u32)p[0];
  sink_port = (u16)(p[1] >> 16);
  echo_port = (u16)p[1];
  u64 small_count = p[2], large_count = p[3], echo_count = p[4], window = p[5];
  if (window == 0 || window > MAX_WINDOW) {
    put_str("virtio-net-bench: the echo window must be 1-64\n");
    return 2;
  }
  struct pci_function pci;
  if (virtio_find(VIRTIO_ID_NET, 0, &pci) != 0) {
    put_str("virtio-net-bench: no virtio-net device on bus 0\n");
    return 3;
  }
  if (virtio_open(&net, pci, VIRTIO_ID_NET, params[PARAM_BAR_BASE]) != 0) return 4;
  if (virtio_negotiate(&net, 1ULL << VIRTIO_F_RING_EVENT_IDX | 1ULL << VIRTIO_NET_F_MAC) != 0) return 5;
  if (virtq_setup(&net, &rxq, 0, QUEUE) != 0 || virtq_setup(&net, &txq, 1, QUEUE) != 0) return 6;
  if (rxq.size != QUEUE || txq.size != QUEUE) {
    put_str("virtio-net-bench: queues smaller than 256\n");
    return 7;
  }
  for (u16 i = 0; i < QUEUE; i++) {
    rx_buffers[i] = alloc(RX_BUFFER, 64);
    tx_frames[i] = alloc(NET_HDR + LARGE_FRAME, 64);
    if (!rx_buffers[i] || !tx_frames[i]) return 8;
  }
  virtio_driver_ok(&net);
  for (int i = 0; i < 6; i++) guest_mac[i] = virtio_config8(&net, (u32)i);
  for (u16 i = 0; i < QUEUE; i++) post_rx(i);
  virtq_kick(&rxq);
  put_str("virtio-net-bench: device 00:");
  put_u64(pci.device);
  put_str(".0 ");
  put_field("mac", (u64)guest_mac[0] << 40 | (u64)guest_mac[1] << 32 | (u64)guest_mac[2] << 24 |
                       (u64)guest_mac[3] << 16 | (u64)guest_mac[4] << 8 | guest_mac[5]);
  put_str("\n");
  if (arp_for_peer() != 0) {
    put_str("virtio-net-bench: no ARP reply from the peer\n");
    return 9;
  }
  reap_tx();
  transmit_phase("tx-small", small_count, SMALL_FRAME);
  transmit_phase("tx-large", large_count, LARGE_FRAME);
  echo_phase(echo_count, (u32)window);
  if (virtio_status(&net) & 0x40) {
    put_str("virtio-net-bench: the device needs a reset\n");
    return 10;
  }
  return 0;
}
