import { describe, expect, it } from 'vitest';
import { timeOrderedUuid } from './time-ordered-id.js';

describe('timeOrderedUuid', () => {
  it('makes version 7 UUIDs that sort in the order of their times', () => {
    const ids = [0, 1, 1_000, 1_764_000_000_000, 1_764_000_000_001].map((t) => timeOrderedUuid(t));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(Array.from({ length: 1000 }, () => timeOrderedUuid(5))).size).toBe(1000);
  });
});
