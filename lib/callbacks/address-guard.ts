import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where a client callback may connect. Only public unicast addresses: loopback, private, link-local
 * (169.254.169.254, the cloud metadata address, is one), CGNAT, unique-local (fd00:ec2::254 is one),
 * multicast, unspecified, reserved and the IPv6 forms that embed an IPv4 address are refused. An
 * IPv4-mapped IPv6 address is judged as the IPv4 address it maps.
 */
export function addressProblem(address: string): string | undefined {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return `${address} is not an IP address`;
  }
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const range = parsed.range();
  return range === 'unicast' ? undefined : `${address} is a ${range} address`;
}

/** Thrown (as a connection error) when a callback host resolves to an address the policy refuses. */
export class RefusedAddressError extends Error {
  readonly code = 'ERR_KLING_RELAY_CALLBACK_ADDRESS';
}

/** Bare hostname of a URL, lower-cased, IPv6 brackets removed. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/**
 * The address policy of client callbacks, applied when the connection is made: `lookup` is the
 * resolver of the delivery's http(s) agents, so what DNS answers at connect time is what is checked
 * (a name that resolved to a public address when the URL was accepted and to 127.0.0.1 now is
 * refused). Literal IP hosts never reach a resolver, so `check` judges them before connecting.
 * `allowHosts` names hosts (as written in the URL: a name or a literal IP) exempt from the policy.
 */
export class AddressGuard {
  private readonly allowed: ReadonlySet<string>;

  constructor(allowHosts: readonly string[] = []) {
    // IPv6 in the form the URL parser writes it (compressed, lower case), so '0:0:0:0:0:0:0:1' allows [::1].
    this.allowed = new Set(allowHosts.map((h) => h.replace(/^\[|\]$/g, '').toLowerCase()).map((h) => (isIP(h) === 6 ? ipaddr.parse(h).toString() : h)));
  }

  /** Whether the URL's host is exempt from the address policy. */
  allows(host: string): boolean {
    return this.allowed.has(host);
  }

  /** Refusal of a URL whose host is a literal IP the policy refuses; undefined when the URL may be tried. */
  check(url: URL): string | undefined {
    const host = hostOf(url);
    if (this.allows(host) || isIP(host) === 0) return undefined;
    return addressProblem(host);
  }

  /** A net `lookup` that resolves as usual, then refuses the host if any address it resolved to is refused. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const all = (options as LookupOptions).all === true;
    dnsLookup(hostname, { ...(options as LookupOptions), all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      if (!this.allows(host)) {
        for (const { address } of addresses) {
          const problem = addressProblem(address);
          if (problem) return callback(new RefusedAddressError(`refused to connect to ${hostname}: ${problem}`), '', 0);
        }
      }
      if (all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`${hostname} resolved to no address`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}
