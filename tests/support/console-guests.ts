// Freestanding PVH guests for the console: real VMs that start in milliseconds, so the window, the
// daemon's console path and their benchmark can be driven without waiting for a Linux boot.

import { buildPvhGuest, serialWrite } from './pvh-guest.js';

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

export const FLOOD_BANNER = 'vireo flood guest ready';
export const FLOOD_LINE_BYTES = 64;

/** The line a flood round ends with: `FLOOD-END-<round mod 10>`, so consecutive rounds differ. */
export function floodEndMarker(round: number): string {
  return `FLOOD-END-${round % 10}`;
}

/**
 * Prints a banner, then for every byte it receives writes `lines` lines of 64 bytes to COM1 (one
 * `rep outsb` per line) and its end marker: console throughput rounds started from the console.
 */
export function buildFloodGuest(dir: string, lines: number): string {
  const text = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const line = `${text.slice(0, FLOOD_LINE_BYTES - 2)}\\r\\n`;
  return buildPvhGuest(
    dir,
    `flood-${lines}`,
    `${serialWrite(`${FLOOD_BANNER}\r\n`)}
    cld
    xor %edi, %edi
  wait:
    mov $0x3fd, %dx
    in %dx, %al
    test $1, %al
    jz wait
    mov $0x3f8, %dx
    in %dx, %al
    mov $${lines}, %ebx
  line:
    mov $text, %esi
    mov $${FLOOD_LINE_BYTES}, %ecx
    rep outsb
    dec %ebx
    jnz line
    ${serialWrite('FLOOD-END-')}
    mov %edi, %eax
    add $48, %al
    out %al, %dx
    mov $13, %al
    out %al, %dx
    mov $10, %al
    out %al, %dx
    inc %edi
    cmp $10, %edi
    jne wait
    xor %edi, %edi
    jmp wait
  text:
    .ascii "${line}"`,
  );
}
