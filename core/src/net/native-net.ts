// The addon's network mechanism (native/src/net.c), typed: a Unix socket pair, and tap devices.
import { native } from '../kvm/native.js';

interface NetAddon {
  socketPair(): [number, number];
  tapOpen(name: string, flags: number): { fd: number; name: string };
  tapSetVnetHeaderSize(fd: number, size: number): void;
  tapSetOffload(fd: number, flags: number): void;
  readonly IFF_TAP: number;
  readonly IFF_NO_PI: number;
  readonly IFF_VNET_HDR: number;
  readonly TUN_F_CSUM: number;
  readonly TUN_F_TSO4: number;
  readonly TUN_F_TSO6: number;
  readonly TUN_F_TSO_ECN: number;
}

export function netAddon(): NetAddon {
  return native() as unknown as NetAddon;
}

/** Two connected AF_UNIX stream sockets (close-on-exec). */
export function socketPair(): [number, number] {
  return netAddon().socketPair();
}
