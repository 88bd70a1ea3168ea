// SIMD arithmetic shared by the compiled kernels of attnlab.models: one register of F as a GCC/Clang
// vector type, and a branch-free exp, expm1 and tanh on every lane (float: exp within 1 ulp, tanh
// within 2.6 ulp, 99.9% of values within 1.5; NaN stays NaN; benchmarks/bench_simd_math.py measures
// both). Included inside each kernel's anonymous namespace.

#pragma once

#include <cstdint>

// taylor[n] = 1 / n!, the coefficients of the exponential series.
struct Taylor {
    double c[16];
    constexpr Taylor() : c{} {
        c[0] = 1;
        for (int n = 1; n < 16; ++n) c[n] = c[n - 1] / n;
    }
    constexpr double operator[](int n) const { return c[n]; }
};
constexpr Taylor taylor;

// A SIMD register of F (GCC/Clang vector extension: one instruction per operation on every lane).
#ifndef SIMD_VECTOR_BYTES
#if defined(__AVX512F__)
#define SIMD_VECTOR_BYTES 64
#else
#define SIMD_VECTOR_BYTES 32
#endif
#endif
template <typename F> struct Simd;
template <> struct Simd<float> {
    typedef float V __attribute__((vector_size(SIMD_VECTOR_BYTES)));
    typedef int32_t I __attribute__((vector_size(SIMD_VECTOR_BYTES)));
    static constexpr float lo = -87.0f, ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    static constexpr float shifter = 12582912.0f;           // 1.5 * 2^23: adding it rounds to an integer
    static constexpr int degree = 7, expm1_degree = 8, bias = 127, mantissa = 23, min_k = -126;
};
template <> struct Simd<double> {
    typedef double V __attribute__((vector_size(SIMD_VECTOR_BYTES)));
    typedef int64_t I __attribute__((vector_size(SIMD_VECTOR_BYTES)));
    static constexpr double lo = -707.0, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    static constexpr double shifter = 6755399441055744.0;   // 1.5 * 2^52
    static constexpr int degree = 13, expm1_degree = 14, bias = 1023, mantissa = 52, min_k = -1022;
};
template <typename F> using Vec = typename Simd<F>::V;
template <typename F> constexpr int64_t lanes = SIMD_VECTOR_BYTES / sizeof(F);

template <typename F> inline Vec<F> load(const F* p) { Vec<F> v; __builtin_memcpy(&v, p, sizeof v); return v; }
template <typename F> inline void store(F* p, Vec<F> v) { __builtin_memcpy(p, &v, sizeof v); }
template <typename F> inline Vec<F> splat(F x) { return Vec<F>{} + x; }

// exp(x) for x <= 0 on every lane, within about one ulp; NaN stays NaN.
template <typename F>
inline Vec<F> exp_nonpositive(Vec<F> x) {
    using S = Simd<F>;
    using V = Vec<F>;
    x = x < S::lo ? splat<F>(S::lo) : x;
    const V k = (x * F(1.4426950408889634) + S::shifter) - S::shifter;
    const V r = (x - k * S::ln2_hi) - k * S::ln2_lo;        // |r| <= ln2 / 2
    V p = splat<F>(F(taylor[S::degree]));
    for (int n = S::degree - 1; n >= 0; --n) p = p * r + F(taylor[n]);
    const V kc = k >= F(S::min_k) ? k : splat<F>(F(S::min_k));   // a NaN k gives a finite scale
    const typename S::I bits = (__builtin_convertvector(kc, typename S::I) + S::bias) << S::mantissa;
    return p * (V)bits;                                     // a vector cast keeps the bits
}

// The lanes of x below `lo` raised to it (x >= lo ? x : lo, one max instruction; NaN stays NaN).
template <typename F>
inline Vec<F> at_least(Vec<F> x, F lo) {
    const Vec<F> floor = splat<F>(lo);
#if SIMD_VECTOR_BYTES == 32 && defined(__AVX__)
    if constexpr (sizeof(F) == 4) return (Vec<F>)__builtin_ia32_maxps256(floor, x);   // maxps returns
    else return (Vec<F>)__builtin_ia32_maxpd256(floor, x);                           // x if x is NaN
#elif SIMD_VECTOR_BYTES == 64 && defined(__AVX512F__)
    if constexpr (sizeof(F) == 4) return (Vec<F>)__builtin_ia32_maxps512_mask(floor, x, x, -1, 4);
    else return (Vec<F>)__builtin_ia32_maxpd512_mask(floor, x, x, -1, 4);
#else
    return x < lo ? floor : x;
#endif
}

// exp(y) - 1 for y <= 0 with full relative accuracy near 0, on N registers in place (each stage
// runs over all N, so that N independent evaluations overlap): y = k ln2 + r, |r| <= ln2 / 2, and
// exp(y) - 1 = 2^k expm1(r) + (2^k - 1), expm1(r) from its Taylor series (one polynomial, no branch).
// y >= lo keeps k >= min_k; a NaN y gives a NaN p and so a NaN result whatever its scale.
template <typename F, int N>
inline void expm1_nonpositive(Vec<F>* y) {
    using S = Simd<F>;
    using V = Vec<F>;
    V k[N], r[N], p[N];
    for (int j = 0; j < N; ++j) {
        y[j] = at_least<F>(y[j], S::lo);
        k[j] = (y[j] * F(1.4426950408889634) + S::shifter) - S::shifter;
    }
    for (int j = 0; j < N; ++j) r[j] = (y[j] - k[j] * S::ln2_hi) - k[j] * S::ln2_lo;
    for (int j = 0; j < N; ++j) p[j] = splat<F>(F(taylor[S::expm1_degree]));
    for (int n = S::expm1_degree - 1; n >= 1; --n)
        for (int j = 0; j < N; ++j) p[j] = p[j] * r[j] + F(taylor[n]);
    for (int j = 0; j < N; ++j) {
        const V scale = (V)((__builtin_convertvector(k[j], typename S::I) + S::bias) << S::mantissa);
        y[j] = scale * (p[j] * r[j]) + (scale - F(1));
    }
}

// tanh(z) = expm1(-2|z|) / (-2 - expm1(-2|z|)) with the sign bit of z, on N registers in place;
// tanh(+-inf) = +-1, NaN stays NaN.
template <typename F, int N>
inline void tanh(Vec<F>* z) {
    using I = typename Simd<F>::I;
    const I sign_bit = (I{} + 1) << (8 * sizeof(F) - 1);
    Vec<F> e[N];
    I sign[N];
    for (int j = 0; j < N; ++j) {
        sign[j] = (I)z[j] & sign_bit;
        e[j] = F(-2) * (Vec<F>)((I)z[j] & ~sign_bit);
    }
    expm1_nonpositive<F, N>(e);
    for (int j = 0; j < N; ++j) z[j] = (Vec<F>)((I)(e[j] / (F(-2) - e[j])) | sign[j]);
}

template <typename F>
inline Vec<F> tanh(Vec<F> z) {
    tanh<F, 1>(&z);
    return z;
}
