// core/math: Philox known answers, bf16/f16 rounding against a brute-force
// nearest-value search, the exact log/sin/cos against libm, the kernels' fast
// exp against libm's double exp.
#include <cmath>
#include <cstdint>
#include <random>

#include "math/convert.h"
#include "math/exact_math.h"
#include "math/half.h"
#include "math/philox.h"
#include "math/vector_exp.h"
#include "test_harness.h"

using namespace lmk;

// Random123's published known-answer vectors for philox4x32_10.
TEST(philox_known_answers) {
  Philox4 a = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK_EQ(a.v[0], 0x6627e8d5u);
  CHECK_EQ(a.v[1], 0xe169c58du);
  CHECK_EQ(a.v[2], 0xbc57ac4cu);
  CHECK_EQ(a.v[3], 0x9b00dbd8u);
  Philox4 b = philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK_EQ(b.v[0], 0x408f276du);
  CHECK_EQ(b.v[1], 0x41c83b0eu);
  CHECK_EQ(b.v[2], 0xa20bc7c6u);
  CHECK_EQ(b.v[3], 0x6d5451fdu);
  Philox4 c = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK_EQ(c.v[0], 0xd16cfe09u);
  CHECK_EQ(c.v[1], 0x94fdccebu);
  CHECK_EQ(c.v[2], 0x5001e420u);
  CHECK_EQ(c.v[3], 0x24126ea1u);
}

// The value of a 16-bit pattern from the format's definition (independent of
// math/half.h): float16 1+5+10 bits, bias 15; bfloat16 1+8+7 bits, bias 127.
// Inf and NaN patterns give Inf and NaN.
static double value_16(uint16_t bits, bool bfloat) {
  const int mantissa_bits = bfloat ? 7 : 10, bias = bfloat ? 127 : 15;
  const int max_exponent = bfloat ? 255 : 31;
  int exponent = (bits >> mantissa_bits) & max_exponent;
  int mantissa = bits & ((1 << mantissa_bits) - 1);
  double sign = (bits & 0x8000) ? -1.0 : 1.0;
  if (exponent == max_exponent) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(mantissa, 1 - bias - mantissa_bits);
  return sign * std::ldexp(mantissa + (1 << mantissa_bits), exponent - bias - mantissa_bits);
}

// Nearest representable value by search over all finite 16-bit patterns of
// the same sign, ties to the even pattern; Inf beyond max + half an ulp.
static uint16_t nearest_16(double x, bool bfloat) {
  auto value = [&](uint16_t bits) { return value_16(bits, bfloat); };
  uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  uint16_t inf = bfloat ? 0x7f80 : 0x7c00;
  double ax = std::fabs(x);
  // Binary search on the monotone magnitude patterns [0, inf].
  uint16_t lo = 0, hi = inf;
  while (hi - lo > 1) {
    uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    if (value(mid) <= ax)
      lo = mid;
    else
      hi = mid;
  }
  double vlo = value(lo);
  double vhi =
      hi == inf ? value(static_cast<uint16_t>(inf - 1)) * 2 - value(static_cast<uint16_t>(inf - 2)) : value(hi);
  // vhi for the Inf pattern is where the next finite value would be.
  uint16_t pick;
  if (ax == vlo)
    pick = lo;
  else if (ax - vlo < vhi - ax)
    pick = lo;
  else if (ax - vlo > vhi - ax)
    pick = hi;
  else
    pick = (lo & 1) ? hi : lo;
  return static_cast<uint16_t>(pick | sign);
}

TEST(bf16_f16_round_to_nearest_even) {
  std::mt19937_64 rng(7);
  int mismatches = 0;
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 4 == 0) bits = (bits & 0xffff0000u) | 0x8000u;      // exact ties
    if (i % 8 == 1) bits = (bits & 0x8fffffffu) | 0x30000000u;  // near f16 range
    float f = bits_float(bits);
    if (!std::isfinite(f)) continue;
    if (float_to_bf16(f).bits != nearest_16(f, true)) ++mismatches;
    if (float_to_f16(f).bits != nearest_16(f, false)) ++mismatches;
    double d = static_cast<double>(f) * (1.0 + std::ldexp(static_cast<double>(rng() % 1024), -40));
    if (double_to_bf16(d).bits != nearest_16(d, true)) ++mismatches;
    if (double_to_f16(d).bits != nearest_16(d, false)) ++mismatches;
  }
  CHECK_EQ(mismatches, 0);
  CHECK_EQ(float_to_f16(65520.0f).bits, 0x7c00);  // halfway above max rounds to Inf
  CHECK_EQ(float_to_f16(65519.99f).bits, 0x7bff);
  CHECK(std::isnan(f16_to_float(float_to_f16(NAN))));
  CHECK(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

// Every float16 and bfloat16 pattern: to float exactly its value (NaN keeps
// sign and payload, quietened on the way back), back to itself; and around
// every value, the rounding cases of float -> 16 bits: the tie with the next
// value up, one float ulp either side of it, and one float ulp either side of
// the value itself, against the brute-force nearest search.
TEST(bf16_f16_every_value_and_tie) {
  int wrong_value = 0, wrong_round_trip = 0, wrong_rounding = 0, wrong_nan = 0, ties = 0;
  for (bool bfloat : {false, true}) {
    auto to_float = [&](uint16_t h) { return bfloat ? bf16_to_float(bf16{h}) : f16_to_float(f16{h}); };
    auto to_16 = [&](float f) { return bfloat ? float_to_bf16(f).bits : float_to_f16(f).bits; };
    const uint16_t inf = bfloat ? 0x7f80 : 0x7c00;
    const int drop = bfloat ? 16 : 13;  // mantissa bits a float has beyond the 16-bit format
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint16_t bits = static_cast<uint16_t>(h);
      const float f = to_float(bits);
      const double want = value_16(bits, bfloat);
      if (std::isnan(want)) {
        // Sign kept, payload moved to the top of the float mantissa; back: the same pattern, quiet bit set.
        uint32_t payload = bits & (bfloat ? 0x7fu : 0x3ffu);
        uint32_t expected = (static_cast<uint32_t>(bits & 0x8000u) << 16) | 0x7f800000u | (payload << drop);
        if (float_bits(f) != expected) ++wrong_nan;
        uint16_t quiet = static_cast<uint16_t>(bits | (bfloat ? 0x40u : 0x200u));
        if (to_16(f) != quiet) ++wrong_nan;
        continue;
      }
      if (!(static_cast<double>(f) == want) || std::signbit(f) != std::signbit(want)) ++wrong_value;
      if (to_16(f) != bits) ++wrong_round_trip;
      if ((bits & 0x7fffu) >= inf) continue;  // Inf: no next value
      // The midpoint to the next magnitude (exact in float: 16-bit formats have fewer mantissa bits).
      const double next = (bits & 0x7fffu) + 1 == inf ? 2 * std::fabs(want) - std::fabs(value_16(bits - 1, bfloat))
                                                      : std::fabs(value_16(static_cast<uint16_t>(bits + 1), bfloat));
      const double mid = (std::fabs(want) + next) / 2 * ((bits & 0x8000u) ? -1 : 1);
      const float tie = static_cast<float>(mid);
      if (static_cast<double>(tie) != mid) {
        ++wrong_rounding;  // the midpoint must be a float
        continue;
      }
      ++ties;
      for (float x : {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, 2.0f * tie), std::nextafter(f, 0.0f),
                      std::nextafter(f, tie)}) {
        if (to_16(x) != nearest_16(x, bfloat)) ++wrong_rounding;
      }
    }
  }
  CHECK_EQ(wrong_value, 0);
  CHECK_EQ(wrong_round_trip, 0);
  CHECK_EQ(wrong_rounding, 0);
  CHECK_EQ(wrong_nan, 0);
  CHECK(ties > 2 * 60000);
}

// float16 results that are subnormal or zero, where the rounding is done by
// a float addition: every 7th float from half the smallest subnormal to past
// the smallest normal, both signs.
TEST(f16_subnormal_results) {
  int mismatches = 0;
  for (uint32_t u = 0x32f00000u; u < 0x38900000u; u += 7) {
    for (uint32_t sign : {0u, 0x80000000u}) {
      float f = bits_float(u | sign);
      if (float_to_f16(f).bits != nearest_16(f, false)) ++mismatches;
    }
  }
  CHECK_EQ(mismatches, 0);
}

TEST(int32_store_saturates) {
  int32_t out[4];
  store_from_double(out, 0, 3.9);
  store_from_double(out, 1, -3.9);
  store_from_double(out, 2, 1e12);
  store_from_double(out, 3, NAN);
  CHECK_EQ(out[0], 3);
  CHECK_EQ(out[1], -3);
  CHECK_EQ(out[2], 2147483647);
  CHECK_EQ(out[3], 0);
}

TEST(exact_log_and_sincos_match_libm) {
  std::mt19937_64 rng(3);
  double worst_log = 0, worst_trig = 0;
  for (int i = 0; i < 100000; ++i) {
    uint32_t w = static_cast<uint32_t>(rng());
    double u = (static_cast<double>(w) + 0.5) * 2.3283064365386963e-10;
    worst_log = std::max(worst_log, std::fabs(exact_log(u) - std::log(u)) / std::fabs(std::log(u)));
    double t = static_cast<double>(w) * 2.3283064365386963e-10;
    double s, c;
    exact_sincos_turns(t, &s, &c);
    double angle = 2 * M_PI * t;
    worst_trig = std::max(worst_trig, std::max(std::fabs(s - std::sin(angle)), std::fabs(c - std::cos(angle))));
  }
  CHECK_LE(worst_log, 1e-14);
  CHECK_LE(worst_trig, 1e-14);
}

// Error of a float result in units of the last place of the true value
// (given in double, accurate far beyond float).
static double ulp_error(float got, double want) {
  double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

// math/vector_exp.h against the double exp: every 61st float of its range
// (both signs, walked by bit pattern: ~37M arguments, dense near 0 as the
// floats are). Every float of the range, walked once: 1.0137 ulp at most
// (at x = 37.7786407).
TEST(vector_exp_within_1_02_ulp) {
  const float low = -86.9f, high = 88.72283172607421875f;  // the flush and overflow thresholds
  double worst = 0;
  float worst_x = 0;
  int64_t count = 0, nonpositive_mismatches = 0;
  auto check = [&](float x) {
    float got = vector_expf(x);
    double e = ulp_error(got, std::exp(static_cast<double>(x)));
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
    if (x <= 0 && float_bits(vector_expf_nonpositive(x)) != float_bits(got)) ++nonpositive_mismatches;
    ++count;
  };
  for (uint32_t bits = 0; bits_float(bits) <= high; bits += 61) check(bits_float(bits));
  for (uint32_t bits = 0x80000000u; bits_float(bits) >= low; bits += 61) check(bits_float(bits));
  for (float x : {low, high, -0.0f, 1e-30f, -1e-30f, 0.5f * 0.693359375f, -0.5f * 0.693359375f}) check(x);
  std::printf("  vector_expf: %lld arguments, worst %.4f ulp at x = %.9g\n", static_cast<long long>(count), worst,
              worst_x);
  CHECK(count > 30000000);
  CHECK_LE(worst, 1.02);
  CHECK_EQ(nonpositive_mismatches, int64_t(0));
  // Below the flush threshold and -inf: +0; above the overflow threshold: +inf; NaN: NaN.
  for (float (*f)(float) : {vector_expf, vector_expf_nonpositive}) {
    CHECK_EQ(float_bits(f(0.0f)), float_bits(1.0f));  // wkv4 relies on e^0 == 1 exactly
    CHECK_EQ(float_bits(f(-86.91f)), 0u);
    CHECK_EQ(float_bits(f(-1e38f)), 0u);
    CHECK_EQ(float_bits(f(-INFINITY)), 0u);
    CHECK(std::isnan(f(NAN)));
    CHECK(std::isnan(f(-NAN)));
  }
  CHECK(std::isfinite(vector_expf(high)));
  CHECK(std::isinf(vector_expf(88.7229f)));
  CHECK(std::isinf(vector_expf(1e30f)));
  CHECK(std::isinf(vector_expf(INFINITY)));
  // The non-positive variant stays accurate a little above 0 (rounding noise
  // in a softmax argument) and up to 88.
  for (float x : {1e-6f, 0.3f, 10.0f, 88.0f})
    CHECK_LE(ulp_error(vector_expf_nonpositive(x), std::exp(double(x))), 1.02);
  // The accumulation-type forms: float is the above, double the library exp.
  CHECK_EQ(vector_exp(-3.25), std::exp(-3.25));
  CHECK_EQ(vector_exp_nonpositive(-700.5), std::exp(-700.5));
  CHECK_EQ(float_bits(vector_exp(-3.25f)), float_bits(vector_expf(-3.25f)));
  CHECK_EQ(float_bits(vector_exp_nonpositive(-3.25f)), float_bits(vector_expf_nonpositive(-3.25f)));
}

TEST(philox_uniform_and_normal_moments) {
  const int n = 200000;
  double sum = 0, sum_sq = 0, usum = 0;
  float umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    double z = philox_normal(42, 0, static_cast<uint64_t>(i), 0.0, 1.0);
    sum += z;
    sum_sq += z * z;
    float u = philox_uniform(42, 0, static_cast<uint64_t>(i), 0.0f, 1.0f);
    usum += u;
    umin = std::min(umin, u);
    umax = std::max(umax, u);
  }
  CHECK_LE(std::fabs(sum / n), 0.01);
  CHECK_LE(std::fabs(sum_sq / n - 1.0), 0.02);
  CHECK_LE(std::fabs(usum / n - 0.5), 0.005);
  CHECK(umin >= 0.0f);
  CHECK(umax < 1.0f);
}

LMK_TEST_MAIN()
