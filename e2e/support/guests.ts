// Freestanding PVH guests for the window's tests and benchmark: real VMs that start in
// milliseconds, so the window can be driven without waiting for a Linux boot.

import { buildPvhGuest, serialWrite } from '../../tests/support/pvh-guest.js';

export const ECHO_BANNER = 'vireo echo guest ready';

/** Prints a banner, then echoes every byte it receives on COM1 (Enter as CR LF), polling the LSR. */
export function buildEchoGuest(dir: string): string {
  return buildPvhGuest(
    dir,
    'echo',
    `${serialWrite(`${ECHO_BANNER}\r\n`)}
  wait:
    mov $0x3fd, %dx
    in %dx, %al
    test $1, %al
    jz wait
    mov $0x3f8, %dx
    in %dx, %al
    out %al, %dx
    cmp $13, %al
    jne wait
    mov $10, %al
    out %al, %dx
    jmp wait`,
  );
}
