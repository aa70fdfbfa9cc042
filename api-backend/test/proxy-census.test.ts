import { ProxyCensus } from '../src/proxy/proxy-census';

describe('ProxyCensus (how many proxies run, without asking the engine)', () => {
  it('counts starts and ends, and an event about an older container of the same owner changes nothing', () => {
    const census = new ProxyCensus();
    census.started('a', 'c1');
    census.started('b', 'c2');
    expect(census.size).toBe(2);
    census.ended('a', 'c0'); // the owner's previous container going away late
    expect(census.size).toBe(2);
    census.ended('a', 'c1');
    census.ended('b');
    expect(census.size).toBe(0);
  });

  it('takes a listing as the truth, except for what it saw change after the listing began', () => {
    const census = new ProxyCensus();
    census.started('gone', 'c1');
    census.started('ended-during', 'c2');
    const since = census.beginListing();
    census.started('made-during', 'c3');
    census.ended('ended-during');
    // The listing was taken before both changes: it misses the new one and still shows the old.
    census.listed(since, [
      { ownerHash: 'ended-during', containerId: 'c2' },
      { ownerHash: 'adopted', containerId: 'c4' },
    ]);
    expect(census.size).toBe(2); // made-during, adopted
    census.ended('made-during', 'c3');
    census.ended('adopted', 'c4');
    expect(census.size).toBe(0);
  });

  it('forgets the changes once no listing is in flight, so a later listing is believed in full', () => {
    const census = new ProxyCensus();
    census.beginListing();
    census.started('a', 'c1');
    census.listingFailed();
    census.listed(census.beginListing(), []);
    expect(census.size).toBe(0);
  });
});
