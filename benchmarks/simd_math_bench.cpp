// Driver of bench_simd_math.py: the compiled kernels' tanh and exp (models/native/simd_math.h)
// against glibc's vector math library (libmvec, when built with -DWITH_LIBMVEC), timed on one
// thread over an array that stays in the L2 cache, and checked against double precision.
//
//   simd_math_bench VALUES PASSES
//
// Prints "fma SECONDS LANES" (one vector FMA at full throughput, for scale; lanes per vector), then
// one line "FUNCTION IMPLEMENTATION SECONDS_PER_VALUE MAX_ULP" per measurement.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef WITH_LIBMVEC
#include <immintrin.h>
extern "C" __m256 _ZGVdN8v_tanhf(__m256);
extern "C" __m256 _ZGVdN8v_expf(__m256);
#endif

namespace {

#include "simd_math.h"

using V = Vec<float>;
constexpr int64_t L = lanes<float>;

// Seconds of the fastest of `passes` calls of run().
template <typename Run>
double fastest(int passes, Run run) {
    double best = 1e30;
    for (int p = 0; p < passes; ++p) {
        const auto start = std::chrono::steady_clock::now();
        run();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

// Seconds per vector FMA at full throughput: 12 independent accumulators.
double fma_seconds() {
    const int64_t n = 20000000;
    V acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = splat<float>(0.001f * j);
    const V a = splat<float>(0.999999f), b = splat<float>(1e-7f);
    const double s = fastest(3, [&] {
        for (int64_t i = 0; i < n; ++i)
            for (int j = 0; j < 12; ++j) acc[j] = acc[j] * a + b;
    });
    float sum = 0;
    for (int j = 0; j < 12; ++j) sum += acc[j][0];
    if (sum == 12345.0f) std::puts("");      // keeps the loop
    return s / (12.0 * n);
}

// out = f(in), 4 registers at a time (the kernels evaluate several chains together).
template <typename F4>
void apply(const std::vector<float>& in, float* out, F4 f4) {
    for (size_t i = 0; i + 4 * L <= in.size(); i += 4 * L) {
        V z[4];
        for (int j = 0; j < 4; ++j) z[j] = load(in.data() + i + j * L);
        f4(z);
        for (int j = 0; j < 4; ++j) store(out + i + j * L, z[j]);
    }
}

float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
uint32_t float_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// |y - exact| in units of the float spacing at |exact|.
double ulp_error(float y, double exact) {
    const float e = float(std::fabs(exact));
    const double spacing = double(std::nextafter(e, INFINITY)) - double(e);
    return std::fabs(double(y) - exact) / spacing;
}

// Largest error of f4 over every 31st float from lo to hi (both of one sign), against exact().
template <typename F4, typename Exact>
double max_ulp(float lo, float hi, F4 f4, Exact exact) {
    const float sign = lo < 0 ? -1.0f : 1.0f;
    uint64_t a = float_bits(std::fabs(lo)), b = float_bits(std::fabs(hi));
    if (a > b) std::swap(a, b);
    std::vector<float> x;
    double worst = 0;
    const auto check = [&] {
        while (x.size() % (4 * L)) x.push_back(x.back());
        std::vector<float> y(x.size());
        apply(x, y.data(), f4);
        for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulp_error(y[i], exact(x[i])));
        x.clear();
    };
    for (uint64_t u = a; u <= b; u += 31) {
        x.push_back(sign * bits_to_float(uint32_t(u)));
        if (x.size() == size_t(1) << 16) check();
    }
    if (!x.empty()) check();
    return worst;
}

template <typename F4, typename Exact>
void report(const char* function, const char* name, const std::vector<float>& in, int passes, F4 f4,
            float lo, float hi, Exact exact) {
    std::vector<float> out(in.size() + 64);
    const double s = fastest(passes, [&] { apply(in, out.data() + 16, f4); });   // offset: no 4K aliasing
    std::printf("%s %s %.6e %.3f\n", function, name, s / in.size(), max_ulp(lo, hi, f4, exact));
}

}  // namespace

int main(int argc, char** argv) {
    const size_t values = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 16384;
    const int passes = argc > 2 ? std::atoi(argv[2]) : 200;
    std::vector<float> x(values), negative(values);
    for (size_t i = 0; i < values; ++i) {
        x[i] = 4.0f * std::sin(0.37f * i) * std::pow(10.0f, -float(i % 5));   // tanh's working range
        negative[i] = -std::fabs(20.0f * std::sin(0.37f * i));                 // softmax's shifted logits
    }
    std::printf("fma %.6e %d\n", fma_seconds(), int(L));
    const auto exact_tanh = [](float v) { return std::tanh(double(v)); };
    const auto exact_exp = [](float v) { return std::exp(double(v)); };
    report("tanh", "attnlab", x, passes, [](V* z) { tanh<float, 4>(z); }, 1e-30f, 10.0f, exact_tanh);
    report("exp", "attnlab", negative, passes, [](V* z) { for (int j = 0; j < 4; ++j) z[j] = exp_nonpositive<float>(z[j]); },
           -87.0f, -1e-30f, exact_exp);
#ifdef WITH_LIBMVEC
    const auto mvec = [](auto fn) {
        return [fn](V* z) {
            for (int j = 0; j < 4; ++j)
                for (int64_t k = 0; k < L; k += 8) {
                    __m256 part;
                    std::memcpy(&part, reinterpret_cast<float*>(&z[j]) + k, 32);
                    part = fn(part);
                    std::memcpy(reinterpret_cast<float*>(&z[j]) + k, &part, 32);
                }
        };
    };
    report("tanh", "libmvec", x, passes, mvec(_ZGVdN8v_tanhf), 1e-30f, 10.0f, exact_tanh);
    report("exp", "libmvec", negative, passes, mvec(_ZGVdN8v_expf), -87.0f, -1e-30f, exact_exp);
#endif
    return 0;
}
