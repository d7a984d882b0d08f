// virtio-net's per-frame header (virtio 1.x §5.1.6: struct virtio_net_hdr_v1, 12 bytes with
// VIRTIO_F_VERSION_1) and the feature bits that decide which of its fields a side may use.

export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;

export const NET_HDR_SIZE = 12;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** The Ethernet header: a frame shorter than this carries nothing. */
export const ETH_HLEN = 14;

export interface NetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
}

export function parseNetHeader(bytes: Uint8Array): NetHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, NET_HDR_SIZE);
  return {
    flags: v.getUint8(0),
    gsoType: v.getUint8(1),
    hdrLen: v.getUint16(2, true),
    gsoSize: v.getUint16(4, true),
    csumStart: v.getUint16(6, true),
    csumOffset: v.getUint16(8, true),
    numBuffers: v.getUint16(10, true),
  };
}

/** What the driver may ask of the device on transmit: the host-side offloads it accepted. */
export interface TransmitOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  ecn: boolean;
}

/**
 * Why a transmit header asks for something the driver did not negotiate, or does not fit its
 * frame; undefined when the device can hand it on.
 */
export function checkTransmitHeader(
  header: NetHeader,
  frameLength: number,
  offloads: TransmitOffloads,
): string | undefined {
  if (header.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
    return `transmit header flags 0x${header.flags.toString(16)}`;
  if (header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (!offloads.csum) return 'checksum offload requested without VIRTIO_NET_F_CSUM';
    if (header.csumStart + header.csumOffset + 2 > frameLength) {
      return `checksum at ${header.csumStart}+${header.csumOffset} is outside the ${frameLength}-byte frame`;
    }
  }
  const gso = header.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso === VIRTIO_NET_HDR_GSO_NONE) {
    if (header.gsoType & VIRTIO_NET_HDR_GSO_ECN) return 'ECN bit without a segmentation type';
    return undefined;
  }
  if (gso === VIRTIO_NET_HDR_GSO_TCPV4 && !offloads.tso4)
    return 'TSO4 requested without VIRTIO_NET_F_HOST_TSO4';
  if (gso === VIRTIO_NET_HDR_GSO_TCPV6 && !offloads.tso6)
    return 'TSO6 requested without VIRTIO_NET_F_HOST_TSO6';
  if (gso !== VIRTIO_NET_HDR_GSO_TCPV4 && gso !== VIRTIO_NET_HDR_GSO_TCPV6) return `segmentation type ${gso}`;
  if (header.gsoType & VIRTIO_NET_HDR_GSO_ECN && !offloads.ecn)
    return 'ECN requested without VIRTIO_NET_F_HOST_ECN';
  if (!(header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return 'segmentation without checksum offload';
  if (header.gsoSize === 0) return 'segmentation with a segment size of 0';
  return undefined;
}
