// Fused forward pass and backpropagation through time of the IndRNN
// (attnlab.models.indrnn; spec recurrent-baseline.md, section 1):
//
//   h_0 = 0,  h_t = sigma(W_in x_t + u * h_{t-1}),  f(X) = m^{-1/2} sum_i c_i h_{T,i}
//
// Samples go in fixed chunks of CHUNK, each chunk in groups of GROUP samples. A group runs the
// whole time loop inside this file, one SIMD register of units (a tile) at a time, with the tile's
// input weights held in registers and the GROUP samples' recurrences interleaved (independent
// dependency chains). Its states h_t (T, GROUP, units) go to a per-thread scratch buffer that stays
// in cache; the backward sweep over the group follows at once, from t = T down:
//
//   g_T = D_T * dL/dh_T,  g_t = D_t * u * g_{t+1},   D_t = sigma'(z_t) (= 1 - h_t^2 for tanh)
//   dL/dW_in += g_t x_t^T,  dL/du += g_t * h_{t-1} (t >= 2),  dL/dc += (dL/df) h_T / sqrt(m)
//
// Each chunk adds its gradient into its own partial sum; the partial sums are added in chunk order,
// so the result does not depend on the number of threads.
//
// Layouts (unit index innermost, units of each group padded with zeros to a multiple of the tile):
//   X (B, T, d), y (B), W (d, G, Mp) with W[k][g][i] = W_in[unit i of group g][k], u (G, Mp),
//   c (G, Mp). A paired model has G = 2 groups (its two halves): twin units run the same
//   instructions on the same numbers, so their states are bitwise equal, and the read-out adds each
//   group's sum separately, so at the paired initialisation the two sums cancel exactly (f = 0).
//
// The exponential (and from it tanh) is a branch-free polynomial accurate to about one ulp; erf
// uses std::erf lane by lane. NaN and infinity propagate as in IEEE arithmetic.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr int64_t CHUNK = 64;     // samples per chunk (one partial gradient each)
constexpr int GROUP = 4;          // samples whose recurrences run interleaved
constexpr int64_t MAX_D = 64;     // largest input dimension (d = 1, 17 have their own instantiation)

#include "chunks.h"
#include "simd_math.h"

// Activation 0: tanh. Activation 1: erf(z / sqrt 2), sigma'(z) = sqrt(2 / pi) exp(-z^2 / 2).
template <typename F>
inline Vec<F> sigma(int activation, Vec<F> z) {
    if (activation == 0) return tanh<F>(z);
    Vec<F> h;
    for (int64_t j = 0; j < lanes<F>; ++j) h[j] = std::erf(z[j] * F(0.70710678118654752440));
    return h;
}

template <typename F>
inline Vec<F> erf_prime(Vec<F> z) {
    return F(0.79788456080286535588) * exp_nonpositive<F>(F(-0.5) * z * z);
}

template <typename F>
struct Problem {
    int64_t B, T, d, G, Mp, per_group;     // per_group: the units of a group (the rest is padding)
    const F *X, *y, *W, *u, *c;
    int activation;
    F out_scale;      // 1 / sqrt(m)
    F grad_scale;     // dL/df_b = grad_scale * (f_b - y_b)
    int64_t units() const { return G * Mp; }
};

// Per-thread scratch, allocated by the caller: the group's states H[t][s][unit] (T, GROUP, G Mp)
// and, for erf, its pre-activations Z of the same shape (for the forward alone only t = T is kept).
template <typename F>
struct Scratch {
    F* H;
    F* Z;
};

// The forward of the samples first[0..GROUP-1] (first[s] repeats when the group is short): every
// h_t, t = 1..T (with keep = false only h_T) into w.H, z_t into w.Z for erf; f into f[0..GROUP-1].
template <typename F, int D>
void group_forward(const Problem<F>& P, const int64_t* first, const Scratch<F>& w, bool keep, F* f) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>, DC = D ? D : MAX_D;
    const int64_t T = P.T, d = D ? D : P.d, n = P.units();
    const bool erf = P.activation != 0;
    const F* x[GROUP];
    for (int s = 0; s < GROUP; ++s) x[s] = P.X + first[s] * T * d;
    for (int64_t i0 = 0; i0 < n; i0 += L) {
        V wk[DC];
        for (int64_t k = 0; k < d; ++k) wk[k] = load(P.W + k * n + i0);
        const V u = load(P.u + i0);
        V h[GROUP];
        for (int64_t t = 0; t < T; ++t) {
            const int64_t row = keep ? t * GROUP * n : 0;
            for (int s = 0; s < GROUP; ++s) {
                const F* xt = x[s] + t * d;
                V z = wk[0] * xt[0];
                for (int64_t k = 1; k < d; ++k) z += wk[k] * xt[k];
                if (t > 0) z += u * h[s];
                h[s] = sigma<F>(P.activation, z);
                if (keep || t == T - 1) {
                    store(w.H + row + s * n + i0, h[s]);
                    if (erf && keep) store(w.Z + row + s * n + i0, z);
                }
            }
        }
    }
    const F* hT = w.H + (keep ? (T - 1) * GROUP * n : 0);
    for (int s = 0; s < GROUP; ++s) {
        F total = 0;
        for (int64_t g = 0; g < P.G; ++g) {
            V lane_sum = {};
            for (int64_t i0 = g * P.Mp; i0 < (g + 1) * P.Mp; i0 += L) {
                V term = load(P.c + i0) * load(hT + s * n + i0);
                for (int64_t j = 0; j < L; ++j)         // padding (NaN if an input is infinite) adds 0
                    if (i0 - g * P.Mp + j >= P.per_group) term[j] = 0;
                lane_sum += term;
            }
            F group_sum = 0;
            for (int64_t j = 0; j < L; ++j) group_sum += lane_sum[j];
            total += group_sum;
        }
        f[s] = total * P.out_scale;
    }
}

// Adds the gradient of S samples, first[0..S-1] in slots slot0..slot0+S-1 of the group's states
// (dL/df = weight[s]), into gW (d, G, Mp), gu (G, Mp), gc (G, Mp).
template <typename F, int D, int S>
void group_backward(const Problem<F>& P, const int64_t* first, int slot0, const Scratch<F>& w,
                    const F* weight, F* gW, F* gu, F* gc) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>, DC = D ? D : MAX_D;
    const int64_t T = P.T, d = D ? D : P.d, n = P.units(), step = GROUP * n;
    const bool erf = P.activation != 0;
    const F* x[S];
    for (int s = 0; s < S; ++s) x[s] = P.X + first[s] * T * d;
    for (int64_t i0 = 0; i0 < n; i0 += L) {
        const V u = load(P.u + i0), c = load(P.c + i0);
        const int64_t base = slot0 * n + i0;
        V carry[S], acc_c = {};
        for (int s = 0; s < S; ++s) {
            carry[s] = weight[s] * c;                                   // dL/dh_T
            acc_c += weight[s] * load(w.H + (T - 1) * step + base + s * n);
        }
        V acc_W[DC] = {}, acc_u = {};
        for (int64_t t = T - 1; t >= 0; --t) {
            for (int s = 0; s < S; ++s) {
                const int64_t at = t * step + base + s * n;
                V g;
                if (erf) {
                    g = carry[s] * erf_prime<F>(load(w.Z + at));
                } else {
                    const V h = load(w.H + at);
                    g = carry[s] * (F(1) - h * h);
                }
                if (t > 0) acc_u += g * load(w.H + at - step);
                const F* xt = x[s] + t * d;
                for (int64_t k = 0; k < d; ++k) acc_W[k] += g * xt[k];
                carry[s] = g * u;                                       // dL/dh_{t-1}
            }
        }
        for (int64_t k = 0; k < d; ++k) store(gW + k * n + i0, load(gW + k * n + i0) + acc_W[k]);
        store(gu + i0, load(gu + i0) + acc_u);
        store(gc + i0, load(gc + i0) + acc_c);
    }
}

// Runs `work(chunk, worker)` for every chunk on `workers` threads (chunks dealt out round-robin).
template <typename Work>
void for_each_chunk(int64_t chunks, int workers, Work work) {
    std::vector<std::thread> pool;
    for (int t = 1; t < workers; ++t)
        pool.emplace_back([&, t] { for (int64_t ch = t; ch < chunks; ch += workers) work(ch, t); });
    for (int64_t ch = 0; ch < chunks; ch += workers) work(ch, 0);
    for (auto& th : pool) th.join();
}

// The samples of chunk ch in groups of GROUP (the last group may be short: `body(first, count)`).
template <typename Body>
void for_each_group(int64_t B, int64_t ch, Body body) {
    const int64_t end = std::min(B, (ch + 1) * CHUNK);
    for (int64_t b = ch * CHUNK; b < end; b += GROUP) {
        int64_t first[GROUP];
        const int count = int(std::min<int64_t>(GROUP, end - b));
        for (int s = 0; s < GROUP; ++s) first[s] = b + std::min(s, count - 1);
        body(first, count);
    }
}

template <typename F>
Scratch<F> scratch(const Problem<F>& P, F* buffer, int64_t per_worker, int worker, bool keep) {
    F* H = buffer + worker * per_worker;
    return Scratch<F>{H, keep ? H + P.T * GROUP * P.units() : nullptr};
}

template <typename F, int D>
void forward(const Problem<F>& P, F* f, F* buffer, int64_t per_worker, int workers) {
    const int64_t chunks = (P.B + CHUNK - 1) / CHUNK;
    for_each_chunk(chunks, workers, [&](int64_t ch, int worker) {
        const Scratch<F> w = scratch(P, buffer, per_worker, worker, false);
        for_each_group(P.B, ch, [&](const int64_t* first, int count) {
            F out[GROUP];
            group_forward<F, D>(P, first, w, false, out);
            for (int s = 0; s < count; ++s) f[first[s]] = out[s];
        });
    });
}

// f(X_b) into f (B) and the gradient of the loss into gW, gu, gc (layouts as the parameters).
// partial: (chunks, G (d + 2) Mp) zeros, the chunks' partial gradients.
template <typename F, int D>
void loss_and_grad(const Problem<F>& P, F* f_out, F* gW, F* gu, F* gc, F* partial, F* buffer,
                   int64_t per_worker, int workers) {
    const int64_t chunks = (P.B + CHUNK - 1) / CHUNK, n = P.units();
    const int64_t nW = P.d * n, per = nW + 2 * n;
    for_each_chunk(chunks, workers, [&](int64_t ch, int worker) {
        const Scratch<F> w = scratch(P, buffer, per_worker, worker, true);
        F* out = partial + ch * per;
        for_each_group(P.B, ch, [&](const int64_t* first, int count) {
            F f[GROUP], weight[GROUP];
            group_forward<F, D>(P, first, w, true, f);
            for (int s = 0; s < count; ++s) {
                f_out[first[s]] = f[s];
                weight[s] = P.grad_scale * (f[s] - P.y[first[s]]);
            }
            if (count == GROUP)
                group_backward<F, D, GROUP>(P, first, 0, w, weight, out, out + nW, out + nW + n);
            else                                        // a short group: its samples one by one
                for (int s = 0; s < count; ++s)
                    group_backward<F, D, 1>(P, first + s, s, w, weight + s, out, out + nW, out + nW + n);
        });
    });
    F* outs[3] = {gW, gu, gc};
    const int64_t offsets[3] = {0, nW, nW + n}, sizes[3] = {nW, n, n};
    sum_chunk_partials<F>(partial, chunks, per, outs, offsets, sizes);
}

template <typename F>
Problem<F> problem(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, int64_t per_group, const F* X,
                   const F* y, const F* W, const F* u, const F* c, int activation, double out_scale,
                   double grad_scale) {
    return Problem<F>{B, T, d, G, Mp, per_group, X, y, W, u, c, activation, F(out_scale), F(grad_scale)};
}

// Calls body.template run<D>() with D = d for the input dimensions compiled as constants, else D = 0.
template <typename Body>
void dispatch(int64_t d, Body body) {
    switch (d) {
        case 1: body.template run<1>(); break;
        case 17: body.template run<17>(); break;
        default: body.template run<0>();
    }
}

template <typename F>
struct ForwardBody {
    const Problem<F>& P; F* f; F* buffer; int64_t per_worker; int workers;
    template <int D> void run() { forward<F, D>(P, f, buffer, per_worker, workers); }
};

template <typename F>
struct LossBody {
    const Problem<F>& P; F* f; F *gW, *gu, *gc, *partial, *buffer; int64_t per_worker; int workers;
    template <int D> void run() { loss_and_grad<F, D>(P, f, gW, gu, gc, partial, buffer, per_worker, workers); }
};

}  // namespace

extern "C" {

int rnn_max_d() { return int(MAX_D); }
int64_t rnn_chunk() { return CHUNK; }
int64_t rnn_group() { return GROUP; }

// Scratch per worker, in elements of F: the forward keeps h_T of one group, the loss and gradient
// every h_t (and for erf every z_t) of one group.
int64_t rnn_scratch(int64_t T, int64_t units, int activation, int keep) {
    return keep ? T * GROUP * units * (activation == 0 ? 1 : 2) : GROUP * units;
}

#define RNN_EXPORT(SUFFIX, F)                                                                         \
    int rnn_lanes_##SUFFIX() { return int(lanes<F>); }                                                \
    void rnn_forward_##SUFFIX(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, int64_t per,    \
                              const F* X, const F* W, const F* u, const F* c, int activation,         \
                              double out_scale, F* f, F* buffer, int workers) {                       \
        const auto P = problem<F>(B, T, d, G, Mp, per, X, nullptr, W, u, c, activation, out_scale, 0);\
        const int64_t per_worker = rnn_scratch(T, G * Mp, activation, 0);                             \
        dispatch(d, ForwardBody<F>{P, f, buffer, per_worker, workers});                               \
    }                                                                                                 \
    void rnn_loss_and_grad_##SUFFIX(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp,           \
                                    int64_t per, const F* X, const F* y, const F* W, const F* u,      \
                                    const F* c, int activation, double out_scale, double grad_scale,  \
                                    F* f, F* gW, F* gu, F* gc, F* partial, F* buffer, int workers) {  \
        const auto P = problem<F>(B, T, d, G, Mp, per, X, y, W, u, c, activation, out_scale,          \
                                  grad_scale);                                                        \
        const int64_t per_worker = rnn_scratch(T, G * Mp, activation, 1);                             \
        dispatch(d, LossBody<F>{P, f, gW, gu, gc, partial, buffer, per_worker, workers});             \
    }

RNN_EXPORT(f32, float)
RNN_EXPORT(f64, double)

}  // extern "C"
