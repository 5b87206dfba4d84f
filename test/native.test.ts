// The typed addon boundary (lib/native.ts): the addon exports exactly the
// entry points native.ts declares, no more and no fewer.
import { describe, expect, it } from 'vitest';
// Internal module, loaded from the same build the public API uses.
import { NATIVE_ENTRY_POINTS, native } from '../dist/cjs/native.js';

describe('the native addon boundary', () => {
  it('exports exactly the entry points lib/native.ts declares', () => {
    const exported = Object.keys(native()).sort();
    const declared = [...NATIVE_ENTRY_POINTS].sort();
    expect(exported.filter((name) => !declared.includes(name as never))).toEqual([]); // undeclared exports
    expect(declared.filter((name) => !exported.includes(name))).toEqual([]); // declared but missing
    for (const name of declared) expect(typeof (native() as unknown as Record<string, unknown>)[name]).toBe('function');
  });
});
