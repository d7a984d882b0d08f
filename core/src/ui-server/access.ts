// Who may use the browser-mode server: requests that name our own address (a DNS-rebinding page
// names another host), carry the per-launch token (in the URL once, then in a cookie), and, for
// the WebSocket, come from a page we served (the Origin a browser sends cannot be forged by pages).

import { randomBytes, timingSafeEqual } from 'node:crypto';

/** 32 random bytes, URL-safe: what `vireo ui` puts in the address. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Compares in constant time so response timing says nothing about how much of a guess was right. */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Cookies are shared by every port of a host, so the name carries the port. */
export function tokenCookieName(port: number): string {
  return `vireo-token-${port}`;
}

export function tokenCookie(port: number, token: string): string {
  return `${tokenCookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const separator = part.indexOf('=');
    if (separator !== -1 && part.slice(0, separator).trim() === name) return part.slice(separator + 1).trim();
  }
  return undefined;
}

/** The Host header values that name this server. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

/** The token a request carries: `?token=` first, then the cookie. */
export function requestToken(url: URL, cookieHeader: string | undefined, port: number): string | undefined {
  return url.searchParams.get('token') ?? cookieValue(cookieHeader, tokenCookieName(port));
}
