// A VM's network, defined once: the VM spec (api/schema.ts) and the MachineConfig both use these
// schemas, and the parsers for what people type (`--net`, `--forward`) produce them.

import { z } from 'zod';

export const MacAddress = z
  .string()
  .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'a MAC address is six lowercase hex pairs joined by colons')
  .refine((mac) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0, 'a MAC address must be unicast');

const Port = z.number().int().min(1, 'a port is 1-65535').max(65535, 'a port is 1-65535');

/** A host port passt listens on, forwarded to a guest port. */
export const PortForward = z
  .object({
    protocol: z.enum(['tcp', 'udp']),
    /** The host address to listen on: loopback unless the person says otherwise. */
    hostAddress: z
      .ipv4('the listen address must be an IPv4 address (or the protocol tcp or udp)')
      .default('127.0.0.1'),
    hostPort: Port,
    guestPort: Port,
  })
  .strict();
export type PortForward = z.infer<typeof PortForward>;

export const TapName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a tap interface name is 1-15 characters');

export const Network = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('none') }).strict(),
  z
    .object({
      mode: z.literal('user'),
      mac: MacAddress.optional(),
      forwards: z.array(PortForward).max(64, 'at most 64 port forwards').default([]),
    })
    .strict(),
  z.object({ mode: z.literal('tap'), tap: TapName, mac: MacAddress.optional() }).strict(),
]);
export type Network = z.infer<typeof Network>;

/** `none`, `user` or `tap:NAME` (the `--net` / `--network` flag). Throws Error naming the problem. */
export function parseNetworkMode(text: string): 'none' | 'user' | { tap: string } {
  if (text === 'none' || text === 'user') return text;
  if (text.startsWith('tap:')) {
    const name = text.slice(4);
    const checked = TapName.safeParse(name);
    if (!checked.success) throw new Error(`'${text}': ${checked.error.issues[0]!.message}`);
    return { tap: name };
  }
  throw new Error(`'${text}' is not none, user or tap:NAME`);
}

/**
 * `[tcp|udp:][ADDRESS:]HOSTPORT:GUESTPORT` (the `--forward` flag): `tcp:8080:80`, `udp:5353:53`,
 * `8022:22` (tcp), `tcp:0.0.0.0:8080:80` (all interfaces). Throws Error naming the problem.
 */
export function parsePortForward(text: string): PortForward {
  const parts = text.split(':');
  let protocol = 'tcp';
  if (parts[0] === 'tcp' || parts[0] === 'udp') protocol = parts.shift()!;
  if (parts.length < 2 || parts.length > 3) {
    throw new Error(`'${text}': use [tcp|udp:][ADDRESS:]HOSTPORT:GUESTPORT, e.g. tcp:8080:80`);
  }
  const [guestPort, hostPort, hostAddress] = [parts.pop()!, parts.pop()!, parts.pop()];
  const port = (what: string, value: string) => {
    if (!/^\d+$/.test(value)) throw new Error(`'${text}': the ${what} port '${value}' is not a number`);
    return Number(value);
  };
  const parsed = PortForward.safeParse({
    protocol,
    hostAddress,
    hostPort: port('host', hostPort),
    guestPort: port('guest', guestPort),
  });
  if (!parsed.success) throw new Error(`'${text}': ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** `tcp:127.0.0.1:8080:80`: how a forward is shown back to people. */
export function formatPortForward(forward: PortForward): string {
  return `${forward.protocol}:${forward.hostAddress}:${forward.hostPort}:${forward.guestPort}`;
}
