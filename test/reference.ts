// Independent references for the tests: written from the specifications with
// plain TypeScript (BigInt, float64 loops), sharing no code with the library.

/** Philox4x32-10 with BigInt arithmetic (Salmon et al. 2011). */
export function philox4x32_10(counter: readonly number[], key: readonly number[]): number[] {
  const M0 = 0xd2511f53n,
    M1 = 0xcd9e8d57n,
    W0 = 0x9e3779b9n,
    W1 = 0xbb67ae85n,
    MASK = 0xffffffffn;
  let [c0, c1, c2, c3] = counter.map(BigInt) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key.map(BigInt) as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    const p0 = M0 * c0,
      p1 = M1 * c2;
    const hi0 = p0 >> 32n,
      lo0 = p0 & MASK,
      hi1 = p1 >> 32n,
      lo1 = p1 & MASK;
    [c0, c1, c2, c3] = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0];
    k0 = (k0 + W0) & MASK;
    k1 = (k1 + W1) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

/** The library's documented uniform stream: element i of rand(seed) (offset 0 for an explicit seed). */
export function philoxUniform(seed: number, i: number, low = 0, high = 1): number {
  const block = Math.floor(i / 4);
  const words = philox4x32_10(
    [block >>> 0, Math.floor(block / 2 ** 32), 0, 0],
    [seed >>> 0, Math.floor(seed / 2 ** 32)],
  );
  const u = Math.fround((words[i % 4]! >>> 8) * 2 ** -24);
  return Math.fround((high - low) * u + low);
}

/** Box-Muller from the documented word pairs, in float64 with Math.log/cos/sin. */
export function philoxNormal(seed: number, i: number, mean = 0, std = 1): number {
  const block = Math.floor(i / 2);
  const words = philox4x32_10(
    [block >>> 0, Math.floor(block / 2 ** 32), 0, 0],
    [seed >>> 0, Math.floor(seed / 2 ** 32)],
  );
  const w0 = words[(i % 2) * 2]!,
    w1 = words[(i % 2) * 2 + 1]!;
  const u1 = (w0 + 0.5) * 2 ** -32;
  const angle = 2 * Math.PI * w1 * 2 ** -32;
  const r = Math.sqrt(-2 * Math.log(u1));
  return (i % 2 ? r * Math.sin(angle) : r * Math.cos(angle)) * std + mean;
}

/** Bit patterns of a float32 value. */
export function f32Bits(x: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, x);
  return buf.getUint32(0);
}

/**
 * Nearest bfloat16/float16 value to x (a float64), ties to even, by exact
 * search over candidate values (float64 holds every 16-bit value exactly).
 */
export function roundTo16(x: number, kind: 'bfloat16' | 'float16'): number {
  if (Number.isNaN(x)) return NaN;
  const mantissaBits = kind === 'bfloat16' ? 7 : 10;
  const minExponent = kind === 'bfloat16' ? -126 : -14;
  const maxValue = kind === 'bfloat16' ? (2 - 2 ** -7) * 2 ** 127 : 65504;
  const ax = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  // Spacing of representable values around ax.
  const exponent = ax === 0 ? minExponent : Math.max(minExponent, Math.floor(Math.log2(ax)));
  let e = exponent;
  if (2 ** e > ax && e > minExponent) e -= 1; // guard log2 rounding
  if (2 ** (e + 1) <= ax) e += 1;
  const ulp = 2 ** (e - mantissaBits);
  const below = Math.floor(ax / ulp) * ulp;
  const above = below + ulp;
  let pick: number;
  if (ax - below < above - ax) pick = below;
  else if (ax - below > above - ax) pick = above;
  else pick = Math.round(below / ulp) % 2 === 0 ? below : above;
  const overflowAt = maxValue + 2 ** (Math.floor(Math.log2(maxValue)) - mantissaBits) / 2;
  if (ax >= overflowAt) return sign * Infinity;
  return sign * pick;
}
