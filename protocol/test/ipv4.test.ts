/** The one IPv4 reader: strict dotted decimal, and what that means for the classifier and client keys that use it. */
import { classifyAddress, clientKey, isIpLiteral } from '../src/public-address';
import { formatIPv4, ipv4Mask, parseIPv4 } from '../src/ipv4';

describe('parseIPv4', () => {
  it('reads dotted decimal, both ends of the range included', () => {
    expect(parseIPv4('0.0.0.0')).toBe(0);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIPv4('10.200.3.17')).toBe(0x0ac80311);
    expect(formatIPv4(parseIPv4('192.168.1.254')!)).toBe('192.168.1.254');
  });

  it('refuses an octet above 255', () => {
    for (const text of ['256.0.0.1', '1.2.3.256', '999.1.1.1', '1.2.3.1000']) expect(parseIPv4(text)).toBeUndefined();
  });

  it('refuses leading zeros, which other readers take for octal', () => {
    // new URL('http://010.0.0.1/').hostname is '8.0.0.1': a decimal reading would disagree with the socket.
    for (const text of ['010.0.0.1', '1.02.3.4', '00.0.0.0', '127.0.0.01']) expect(parseIPv4(text)).toBeUndefined();
  });

  it('refuses the short, hex and padded forms, and anything that is not four parts', () => {
    for (const text of ['127.1', '0x7f.0.0.1', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.', '', '-1.2.3.4', '1.2.3.4/32']) {
      expect(parseIPv4(text)).toBeUndefined();
    }
  });

  it('gives masks for every prefix length', () => {
    expect(ipv4Mask(0)).toBe(0);
    expect(ipv4Mask(8)).toBe(0xff000000);
    expect(ipv4Mask(28)).toBe(0xfffffff0);
    expect(ipv4Mask(32)).toBe(0xffffffff);
  });
});

describe('IPv4 inside IPv6, as the classifier and client keys meet it', () => {
  it('judges an IPv4-mapped address (what a dual-stack socket reports) by the address it carries', () => {
    expect(classifyAddress('::ffff:127.0.0.1')).toBe('loopback');
    expect(classifyAddress('::ffff:10.1.2.3')).toBe('private');
    expect(classifyAddress('[::ffff:8.8.8.8]')).toBe('public');
    expect(classifyAddress('::ffff:7f00:1')).toBe('loopback'); // the same address written in hex
    expect(clientKey('::ffff:203.0.114.9')).toBe('203.0.114.9');
  });

  it('counts a mapped form with a bad IPv4 tail as invalid, never as public', () => {
    for (const text of ['::ffff:010.0.0.1', '::ffff:256.0.0.1', '::ffff:1.2.3']) {
      expect(classifyAddress(text)).toBe('invalid');
      expect(isIpLiteral(text)).toBe(false);
    }
  });

  it('counts a leading-zero IPv4 literal as invalid, so a share naming one is refused', () => {
    expect(classifyAddress('010.0.0.1')).toBe('invalid');
    expect(classifyAddress('8.8.8.8')).toBe('public');
  });
});
