// What a virtio-net device needs from the host side of the wire. Backends (passt, tap) carry
// Ethernet frames, report whether the wire is there, and take back-pressure both ways.

/** What the backend tells its device. Called on the VM host's main thread. */
export interface NetBackendEvents {
  /**
   * A frame for the guest (starting with a virtio_net_hdr_v1 when the backend's `vnetHeader` is
   * set). The view is only valid during the call. After pauseReceive() a few more may come.
   */
  frame(frame: Uint8Array): void;
  /** The wire came or went: passt started or died, the tap device appeared or vanished. */
  link(up: boolean, reason: string): void;
  /** After `writable` went false: the backend takes frames again. */
  writable(): void;
}

/** The offloads the guest accepted for frames it receives (tap: TUNSETOFFLOAD). */
export interface GuestOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  ecn: boolean;
}

export interface NetBackend {
  /** For logs: "passt", "tap vireo0". */
  readonly description: string;
  /**
   * Frames carry a 12-byte virtio_net_hdr_v1 both ways and the backend honours its checksum and
   * segmentation fields (tap with IFF_VNET_HDR); otherwise frames are plain Ethernet.
   */
  readonly vnetHeader: boolean;
  /** The wire is there: frames sent now reach the other side. */
  readonly up: boolean;
  /** False while the backend's send buffer is full: hold frames until events.writable(). */
  readonly writable: boolean;
  /** Starts delivering events to `events`; a later call hands them to a new device (a reboot). */
  start(events: NetBackendEvents): void;
  /** Sends one frame given as pieces; a frame sent while the link is down is dropped (returns false). */
  send(pieces: readonly Uint8Array[]): boolean;
  /** The guest has no room: stop reading frames until resumeReceive(). */
  pauseReceive(): void;
  resumeReceive(): void;
  /** Only for backends with `vnetHeader`. */
  setGuestOffloads?(offloads: GuestOffloads): void;
  /** Ends the backend (kills passt, closes the tap fd). */
  close(): void;
}
