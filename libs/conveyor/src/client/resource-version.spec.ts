import { resourceVersion } from './driver-results';

describe('resourceVersion', () => {
  it('reads the string the server sends as a number', () => {
    expect(resourceVersion({ metadata: { version: '1' } })).toBe(1);
    expect(resourceVersion({ metadata: { version: '12' } })).toBe(12);
  });

  it('is undefined when there is no version or it is not a whole number', () => {
    expect(resourceVersion({})).toBeUndefined();
    expect(resourceVersion({ metadata: null })).toBeUndefined();
    expect(resourceVersion({ metadata: {} })).toBeUndefined();
    expect(resourceVersion({ metadata: { version: '1.5' } })).toBeUndefined();
    expect(resourceVersion({ metadata: { version: 'latest' } })).toBeUndefined();
  });

  it('accepts a number too (newer upstream servers may send one)', () => {
    expect(resourceVersion({ metadata: { version: 3 as unknown as string } })).toBe(3);
  });
});
