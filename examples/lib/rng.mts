// A small seeded random number generator for the examples: xoshiro128**
// (Blackman & Vigna), its 128-bit state filled from the seed by splitmix32.
// Pure 32-bit integer arithmetic, so the same seed gives the same numbers on
// every platform and Node version.

function splitmix32(state: { s: number }): number {
  let z = (state.s = (state.s + 0x9e3779b9) | 0);
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** xoshiro128**'s four words, in a Uint32Array so that stores wrap to 32 bits as in C. */
type State = Uint32Array & { 0: number; 1: number; 2: number; 3: number };

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export class Rng {
  /** The 128-bit xoshiro128** state. */
  private readonly s: State;

  /** seed: any integer (or a string, hashed); the same seed gives the same sequence. */
  constructor(seed: number | string = 0) {
    let s = 0;
    if (typeof seed === 'string') {
      for (let i = 0; i < seed.length; i++) s = Math.imul(s ^ seed.charCodeAt(i), 0x01000193);
    } else {
      if (!Number.isFinite(seed)) throw new RangeError(`Rng: seed must be a finite number, got ${seed}`);
      // Mix both 32-bit halves of an integer up to 2^53.
      s = (seed | 0) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x27d4eb2d);
    }
    const state = { s };
    this.s = Uint32Array.from({ length: 4 }, () => splitmix32(state)) as State;
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextUint32() >>> 5,
      lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, n), n <= 2^32, without modulo bias. */
  int(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= 2 ** 32))
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}
