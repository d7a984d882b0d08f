// Which received frames the guest wants (virtio 1.x §5.1.6.5: the control queue's RX and MAC
// classes), and the control commands that set it. A device without CTRL_RX delivers everything.

import { formatMac } from '../../../net/mac.js';
import type { Reader } from '../descriptor-utils.js';

export const VIRTIO_NET_CTRL_RX = 0;
export const VIRTIO_NET_CTRL_RX_PROMISC = 0;
export const VIRTIO_NET_CTRL_RX_ALLMULTI = 1;
export const VIRTIO_NET_CTRL_MAC = 1;
export const VIRTIO_NET_CTRL_MAC_TABLE_SET = 0;
export const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;

/** Table entries kept; a longer table turns into "accept all of that kind", as QEMU does. */
export const MAC_TABLE_ENTRIES = 64;

export interface RxFilterState {
  promiscuous: boolean;
  allMulticast: boolean;
  /** undefined: more than MAC_TABLE_ENTRIES were given, all are accepted. */
  unicast: string[] | undefined;
  multicast: string[] | undefined;
}

export class RxFilter {
  /** On at reset: a driver that never sends RX commands still gets every frame. */
  promiscuous = true;
  allMulticast = true;
  private unicast: Set<string> | undefined = new Set();
  private multicast: Set<string> | undefined = new Set();

  constructor(public mac: Uint8Array) {}

  reset(): void {
    this.promiscuous = true;
    this.allMulticast = true;
    this.unicast = new Set();
    this.multicast = new Set();
  }

  /** Does a frame for destination `dest` (its first 6 bytes) go to the guest? */
  accepts(frame: Uint8Array): boolean {
    if (this.promiscuous) return true;
    if (frame[0]! & 1) {
      if (this.allMulticast || this.multicast === undefined) return true;
      let broadcast = true;
      for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) broadcast = false;
      return broadcast || this.multicast.has(formatMac(frame.subarray(0, 6)));
    }
    let ours = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== this.mac[i]) ours = false;
    return ours || this.unicast === undefined || this.unicast.has(formatMac(frame.subarray(0, 6)));
  }

  /**
   * Carries out one control command whose class and command bytes were read; its data follows
   * in `data`. Returns the ack (VIRTIO_NET_OK / ERR). Throws ChainError for a short command.
   */
  command(klass: number, command: number, data: Reader, macAddrSet: boolean): number {
    if (klass === VIRTIO_NET_CTRL_RX) {
      if (command !== VIRTIO_NET_CTRL_RX_PROMISC && command !== VIRTIO_NET_CTRL_RX_ALLMULTI)
        return VIRTIO_NET_ERR;
      const on = data.readU8() !== 0;
      if (command === VIRTIO_NET_CTRL_RX_PROMISC) this.promiscuous = on;
      else this.allMulticast = on;
      return VIRTIO_NET_OK;
    }
    if (klass === VIRTIO_NET_CTRL_MAC) {
      if (command === VIRTIO_NET_CTRL_MAC_TABLE_SET) {
        const unicast = readMacTable(data);
        const multicast = readMacTable(data);
        this.unicast = unicast;
        this.multicast = multicast;
        return VIRTIO_NET_OK;
      }
      if (command === VIRTIO_NET_CTRL_MAC_ADDR_SET && macAddrSet) {
        const mac = data.readBytes(6);
        if (mac[0]! & 1) return VIRTIO_NET_ERR;
        this.mac = mac;
        return VIRTIO_NET_OK;
      }
    }
    return VIRTIO_NET_ERR;
  }

  state(): RxFilterState {
    return {
      promiscuous: this.promiscuous,
      allMulticast: this.allMulticast,
      unicast: this.unicast && [...this.unicast],
      multicast: this.multicast && [...this.multicast],
    };
  }
}

/** `le32 entries; u8 macs[entries][6]`: the set, or undefined when it is longer than we keep. */
function readMacTable(data: Reader): Set<string> | undefined {
  const entries = data.readU32();
  if (entries > MAC_TABLE_ENTRIES) {
    data.skip(entries * 6);
    return undefined;
  }
  const table = new Set<string>();
  for (let i = 0; i < entries; i++) table.add(formatMac(data.readBytes(6)));
  return table;
}
