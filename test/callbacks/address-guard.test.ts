import { expect } from 'chai';
import type { LookupAddress } from 'node:dns';
import { addressProblem, AddressGuard } from '../../lib/callbacks/address-guard.js';

function resolve(guard: AddressGuard, host: string, all: boolean): Promise<{ error: Error | null; address: string | LookupAddress[] }> {
  return new Promise((done) => {
    guard.lookup(host, { all }, (error: Error | null, address: string | LookupAddress[]) => done({ error, address }));
  });
}

describe('client callback address policy', () => {
  it('allows public unicast addresses only', () => {
    for (const address of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(addressProblem(address), address).to.equal(undefined);
    const refused: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.8.9.10', 'loopback'],
      ['::1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['192.168.0.1', 'private'],
      ['169.254.169.254', 'linkLocal'],
      ['fe80::1', 'linkLocal'],
      ['100.64.0.1', 'carrierGradeNat'],
      ['fd00:ec2::254', 'uniqueLocal'],
      ['fc00::1', 'uniqueLocal'],
      ['224.0.0.1', 'multicast'],
      ['ff02::1', 'multicast'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['255.255.255.255', 'broadcast'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:169.254.169.254', 'linkLocal'],
      ['64:ff9b::7f00:1', 'rfc6052'],
      ['2002:7f00:1::', '6to4'],
    ];
    for (const [address, range] of refused) expect(addressProblem(address), address).to.equal(`${address} is a ${range} address`);
    expect(addressProblem('not-an-ip')).to.match(/not an IP address/);
  });

  it('judges literal IP hosts before connecting, names by what DNS answers at connect time', async () => {
    const guard = new AddressGuard();
    expect(guard.check(new URL('http://169.254.169.254/latest'))).to.equal('169.254.169.254 is a linkLocal address');
    expect(guard.check(new URL('http://[fd00:ec2::254]/'))).to.equal('fd00:ec2::254 is a uniqueLocal address');
    expect(guard.check(new URL('http://0x7f.1/'))).to.equal('127.0.0.1 is a loopback address');
    expect(guard.check(new URL('https://client.example.com/hook')), 'names are left to the lookup').to.equal(undefined);
    for (const all of [false, true]) {
      const { error } = await resolve(guard, 'localhost', all);
      expect(error?.message).to.match(/^refused to connect to localhost: .* is a loopback address$/);
      expect((error as { code?: string }).code).to.equal('ERR_KLING_RELAY_CALLBACK_ADDRESS');
    }
  });

  it('exempts the allowHosts, as written in the URL (IPv6 in any spelling)', async () => {
    const guard = new AddressGuard(['localhost', '0:0:0:0:0:0:0:1', '127.0.0.1']);
    expect(guard.check(new URL('http://[::1]:8080/'))).to.equal(undefined);
    expect(guard.check(new URL('http://127.0.0.1/'))).to.equal(undefined);
    expect(guard.check(new URL('http://127.0.0.2/'))).to.equal('127.0.0.2 is a loopback address');
    const one = await resolve(guard, 'localhost', false);
    expect(one.error).to.equal(null);
    expect(one.address).to.be.oneOf(['127.0.0.1', '::1']);
    const many = await resolve(guard, 'localhost', true);
    expect(many.error).to.equal(null);
    expect((many.address as LookupAddress[]).map((a) => a.address)).to.include.oneOf(['127.0.0.1', '::1']);
  });
});
