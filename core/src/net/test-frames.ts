// Test support: the Ethernet, ARP, IPv4, UDP, TCP and DHCP a guest's network stack would send and
// parse, enough for tests to speak to a real backend (passt, a tap device) as a guest does.

export const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function ipBytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.'), Number);
}

export function ipText(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4)).join('.');
}

export function ethernet(dest: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(14 + payload.length);
  frame.set(dest, 0);
  frame.set(src, 6);
  new DataView(frame.buffer).setUint16(12, type);
  frame.set(payload, 14);
  return frame;
}

function checksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ipv4(src: Uint8Array, dst: Uint8Array, protocol: number, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(20 + payload.length);
  const v = new DataView(packet.buffer);
  v.setUint8(0, 0x45);
  v.setUint16(2, packet.length);
  v.setUint8(8, 64); // TTL
  v.setUint8(9, protocol);
  packet.set(src, 12);
  packet.set(dst, 16);
  v.setUint16(10, checksum(packet.subarray(0, 20)));
  packet.set(payload, 20);
  return packet;
}

/** A UDP datagram with its checksum (over the IPv4 pseudo-header). */
export function udp(
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  data: Uint8Array,
): Uint8Array {
  const segment = new Uint8Array(8 + data.length);
  const v = new DataView(segment.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, segment.length);
  segment.set(data, 8);
  const pseudo = new Uint8Array(12 + segment.length);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo[9] = IPPROTO_UDP;
  new DataView(pseudo.buffer).setUint16(10, segment.length);
  pseudo.set(segment, 12);
  v.setUint16(6, checksum(pseudo) || 0xffff);
  return segment;
}

export function arpRequest(senderMac: Uint8Array, senderIp: Uint8Array, targetIp: Uint8Array): Uint8Array {
  const arp = new Uint8Array(28);
  const v = new DataView(arp.buffer);
  v.setUint16(0, 1); // Ethernet
  v.setUint16(2, ETHERTYPE_IPV4);
  v.setUint8(4, 6);
  v.setUint8(5, 4);
  v.setUint16(6, 1); // request
  arp.set(senderMac, 8);
  arp.set(senderIp, 14);
  arp.set(targetIp, 24);
  return ethernet(BROADCAST, senderMac, ETHERTYPE_ARP, arp);
}

/** A DHCPDISCOVER (or, with `requested`/`server`, a DHCPREQUEST) from `mac`, broadcast. */
export function dhcpMessage(
  mac: Uint8Array,
  xid: number,
  type: 'discover' | 'request',
  requested?: Uint8Array,
  server?: Uint8Array,
): Uint8Array {
  const options = [53, 1, type === 'discover' ? 1 : 3];
  if (requested) options.push(50, 4, ...requested);
  if (server) options.push(54, 4, ...server);
  options.push(55, 3, 1, 3, 6, 255); // ask for netmask, router, DNS; end
  const bootp = new Uint8Array(240 + options.length);
  const v = new DataView(bootp.buffer);
  v.setUint8(0, 1); // BOOTREQUEST
  v.setUint8(1, 1);
  v.setUint8(2, 6);
  v.setUint32(4, xid);
  v.setUint16(10, 0x8000); // broadcast reply
  bootp.set(mac, 28);
  v.setUint32(236, 0x63825363); // magic cookie
  bootp.set(options, 240);
  const zero = new Uint8Array(4);
  const all = ipBytes('255.255.255.255');
  return ethernet(
    BROADCAST,
    mac,
    ETHERTYPE_IPV4,
    ipv4(zero, all, IPPROTO_UDP, udp(zero, all, 68, 67, bootp)),
  );
}

export interface ParsedFrame {
  dest: Uint8Array;
  src: Uint8Array;
  type: number;
  arp?: { op: number; senderMac: Uint8Array; senderIp: string; targetIp: string };
  ip?: { src: string; dst: string; protocol: number };
  udp?: { srcPort: number; dstPort: number; data: Uint8Array };
  tcp?: { srcPort: number; dstPort: number; flags: number; seq: number };
  dhcp?: { op: number; xid: number; yiaddr: string; type: number; options: Map<number, Uint8Array> };
}

export const TCP_SYN = 0x02;

export function parseFrame(received: Uint8Array): ParsedFrame {
  // A plain Uint8Array view (a Buffer's slices would be Buffers).
  const frame = new Uint8Array(received.buffer, received.byteOffset, received.byteLength);
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const out: ParsedFrame = { dest: frame.slice(0, 6), src: frame.slice(6, 12), type: v.getUint16(12) };
  if (out.type === ETHERTYPE_ARP && frame.length >= 42) {
    out.arp = {
      op: v.getUint16(20),
      senderMac: frame.slice(22, 28),
      senderIp: ipText(frame.subarray(28, 32)),
      targetIp: ipText(frame.subarray(38, 42)),
    };
  }
  if (out.type !== ETHERTYPE_IPV4 || frame.length < 34) return out;
  const ihl = (frame[14]! & 0xf) * 4;
  const protocol = frame[23]!;
  out.ip = { src: ipText(frame.subarray(26, 30)), dst: ipText(frame.subarray(30, 34)), protocol };
  const l4 = 14 + ihl;
  const end = 14 + v.getUint16(16);
  if (protocol === IPPROTO_UDP && frame.length >= l4 + 8) {
    out.udp = { srcPort: v.getUint16(l4), dstPort: v.getUint16(l4 + 2), data: frame.slice(l4 + 8, end) };
    if (out.udp.srcPort === 67 && out.udp.data.length >= 240) out.dhcp = parseDhcp(out.udp.data);
  }
  if (protocol === IPPROTO_TCP && frame.length >= l4 + 20) {
    out.tcp = {
      srcPort: v.getUint16(l4),
      dstPort: v.getUint16(l4 + 2),
      seq: v.getUint32(l4 + 4),
      flags: frame[l4 + 13]!,
    };
  }
  return out;
}

function parseDhcp(bootp: Uint8Array): ParsedFrame['dhcp'] {
  const v = new DataView(bootp.buffer, bootp.byteOffset, bootp.byteLength);
  const options = new Map<number, Uint8Array>();
  for (let at = 240; at < bootp.length; ) {
    const code = bootp[at]!;
    if (code === 255) break;
    if (code === 0) {
      at++;
      continue;
    }
    const length = bootp[at + 1]!;
    options.set(code, bootp.slice(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return {
    op: bootp[0]!,
    xid: v.getUint32(4),
    yiaddr: ipText(bootp.subarray(16, 20)),
    type: options.get(53)?.[0] ?? 0,
    options,
  };
}
