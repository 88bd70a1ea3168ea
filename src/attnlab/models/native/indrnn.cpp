// Fused forward pass and backpropagation through time of the IndRNN
// (attnlab.models.indrnn; spec recurrent-baseline.md, section 1):
//
//   h_0 = 0,  h_t = sigma(W_in x_t + u * h_{t-1}),  f(X) = m^{-1/2} sum_i c_i h_{T,i}
//
// Samples go in fixed chunks of CHUNK, each chunk in groups of GROUP samples. For a group, the input
// drives W_in x_t of all its steps are computed first as a small matrix product (rows of tokens
// against register tiles of units), the recurrence then runs over the drives with every (sample,
// tile) chain of a step independent of the others, and the backward sweep follows at once. The
// group's states h_t (T, GROUP, units) stay in a per-thread scratch buffer in cache; the backward
// overwrites them with g_t and ends with dL/dW_in as a second small matrix product:
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
// tanh is a branch-free polynomial of expm1 (simd_math.h, within 2.6 ulp in float); erf uses
// std::erf lane by lane. NaN and infinity propagate as in IEEE arithmetic.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr int64_t CHUNK = 64;     // samples per chunk (one partial gradient each)
constexpr int GROUP = 4;          // samples whose recurrences run interleaved
constexpr int64_t MAX_D = 64;     // largest input dimension (d = 1, 17 have their own instantiation)
constexpr int64_t TIME_BLOCK = 16;      // steps of drives a forward pass alone keeps
constexpr int64_t TIME_BLOCK_MAX = 64;  // steps of drives computed per call of `drives`

#include "chunks.h"
#include "simd_math.h"
#include "tiles.h"

// Activation 0: tanh. Activation 1: erf(z / sqrt 2), sigma'(z) = sqrt(2 / pi) exp(-z^2 / 2).
// h = sigma(z) on N registers (evaluated together, so that their latencies overlap).
template <typename F, int N>
inline void activate(int activation, const Vec<F>* z, Vec<F>* h) {
    for (int j = 0; j < N; ++j) h[j] = z[j];
    if (activation == 0) {
        tanh<F, N>(h);
        return;
    }
    for (int j = 0; j < N; ++j)
        for (int64_t i = 0; i < lanes<F>; ++i) h[j][i] = std::erf(z[j][i] * F(0.70710678118654752440));
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

// Per-thread scratch, allocated by the caller (sizes: rnn_scratch). With keep (a training step) H holds
// every state h_t of the group, (T, GROUP, units), and for erf Z its pre-activations of the same
// shape; the input drives are written straight into them. A forward pass alone keeps O(units): Z is
// a block of TIME_BLOCK steps of drives and `state` (GROUP, units) carries h_{t-1}.
template <typename F>
struct Scratch {
    F *H, *Z, *state;
};

// out[r][i] = sum_k rows[r][k] W[k][i] for R rows and NT tiles of units from i0; one FMA chain per
// lane over k = 0..d-1 whatever R and NT, so twin units get bitwise equal drives.
template <typename F, int D, int R, int NT>
inline void drive_tile(const Problem<F>& P, const F* const* rows, F* const* out, int64_t i0) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t d = D ? D : P.d, n = P.units();
    V acc[R][NT] = {};
    for (int64_t k = 0; k < d; ++k) {
        V w[NT];
        for (int j = 0; j < NT; ++j) w[j] = load(P.W + k * n + i0 + j * L);
        for (int r = 0; r < R; ++r) {
            const F x = rows[r][k];
            for (int j = 0; j < NT; ++j) acc[r][j] += w[j] * x;
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NT; ++j) store(out[r] + i0 + j * L, acc[r][j]);
}

// Drives of `count` rows: out[r] (units) = W_in x for the input row rows[r] (d).
template <typename F, int D>
void drives(const Problem<F>& P, const F* const* rows, F* const* out, int64_t count) {
    constexpr int64_t L = lanes<F>;
    constexpr int R = 6;
    const int64_t n = P.units();
    int64_t r = 0;
    for (; r + R <= count; r += R) {
        int64_t i0 = 0;
        for (; i0 + 2 * L <= n; i0 += 2 * L) drive_tile<F, D, R, 2>(P, rows + r, out + r, i0);
        for (; i0 < n; i0 += L) drive_tile<F, D, R, 1>(P, rows + r, out + r, i0);
    }
    remainder_tile<R - 1>(count - r, [&](auto rest) {
        constexpr int RR = decltype(rest)::value;
        int64_t i0 = 0;
        for (; i0 + 2 * L <= n; i0 += 2 * L) drive_tile<F, D, RR, 2>(P, rows + r, out + r, i0);
        for (; i0 < n; i0 += L) drive_tile<F, D, RR, 1>(P, rows + r, out + r, i0);
    });
}

// Step t of the recurrence for NT tiles of units from i0 and every sample of the group (NT GROUP
// independent chains, their activations evaluated together): h_t = sigma(z_row + u h_{t-1}). With
// keep h_t goes to w.H (which holds h_{t-1} as well), else to w.state.
template <typename F, int NT>
inline void recur_tiles(const Problem<F>& P, int64_t t, int64_t i0, const F* z_row, const Scratch<F>& w, bool keep) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t n = P.units(), step = GROUP * n;
    const F* previous = keep ? w.H + (t > 0 ? t - 1 : 0) * step : w.state;
    F* current = keep ? w.H + t * step : w.state;
    V z[NT * GROUP], h[NT * GROUP];
    for (int j = 0; j < NT; ++j) {
        const V u = load(P.u + i0 + j * L);
        for (int s = 0; s < GROUP; ++s) {
            const int64_t at = s * n + i0 + j * L;
            z[j * GROUP + s] = load(z_row + at);
            if (t > 0) z[j * GROUP + s] += u * load(previous + at);
        }
    }
    activate<F, NT * GROUP>(P.activation, z, h);
    for (int j = 0; j < NT; ++j)
        for (int s = 0; s < GROUP; ++s) {
            const int64_t at = s * n + i0 + j * L;
            store(current + at, h[j * GROUP + s]);
            if (keep && P.activation != 0) store(w.Z + t * step + at, z[j * GROUP + s]);
        }
}

// The forward of the samples first[0..GROUP-1] (first[s] repeats when the group is short): with
// keep every h_t into w.H (and z_t into w.Z for erf), else only h_T (in w.state); f into f[0..GROUP-1].
template <typename F, int D>
void group_forward(const Problem<F>& P, const int64_t* first, const Scratch<F>& w, bool keep, F* f) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t T = P.T, d = D ? D : P.d, n = P.units(), step = GROUP * n;
    const bool erf = P.activation != 0;
    const int64_t block = keep ? T : TIME_BLOCK;
    const F* rows[GROUP * TIME_BLOCK_MAX];
    F* out[GROUP * TIME_BLOCK_MAX];
    for (int64_t t0 = 0; t0 < T; t0 += block) {
        const int64_t t1 = std::min(T, t0 + block);
        F* Zb = keep ? (erf ? w.Z : w.H) : w.Z - t0 * step;        // Zb + t * step: the drives of step t
        for (int64_t t = t0; t < t1; t += TIME_BLOCK_MAX) {     // the rows in batches of the pointer arrays
            const int64_t t2 = std::min(t1, t + TIME_BLOCK_MAX);
            int64_t count = 0;
            for (int64_t tt = t; tt < t2; ++tt)
                for (int s = 0; s < GROUP; ++s, ++count) {
                    rows[count] = P.X + (first[s] * T + tt) * d;
                    out[count] = Zb + tt * step + s * n;
                }
            drives<F, D>(P, rows, out, count);
        }
        for (int64_t t = t0; t < t1; ++t) {
            const F* z_row = Zb + t * step;
            for (int64_t i0 = 0; i0 < n; i0 += L) recur_tiles<F, 1>(P, t, i0, z_row, w, keep);
        }
    }
    using I = typename Simd<F>::I;
    using E = decltype(+I{}[0]);                        // the lane's integer type
    I lane = {};
    for (int64_t j = 0; j < L; ++j) lane[j] = E(j);
    const F* hT = keep ? w.H + (T - 1) * step : w.state;
    F total[GROUP] = {};
    for (int64_t g = 0; g < P.G; ++g) {
        V lane_sum[GROUP] = {};
        for (int64_t i0 = g * P.Mp; i0 < (g + 1) * P.Mp; i0 += L) {
            const I unit = lane + E(i0 - g * P.Mp);       // padding (NaN if an input is infinite) adds 0
            for (int s = 0; s < GROUP; ++s) {
                const V term = load(P.c + i0) * load(hT + s * n + i0);
                lane_sum[s] += unit < E(P.per_group) ? term : V{};
            }
        }
        for (int s = 0; s < GROUP; ++s) {
            F group_sum = 0;
            for (int64_t j = 0; j < L; ++j) group_sum += lane_sum[s][j];
            total[s] += group_sum;
        }
    }
    for (int s = 0; s < GROUP; ++s) f[s] = total[s] * P.out_scale;
}

// gW[k][i] += sum over t and s < count of G[t][s][i] x_s[t][k] for KB inputs k0.. and NT tiles from
// i0 (G: (T, GROUP, units)); the sum runs over t, then s, for every (k, i).
template <typename F, int D, int KB, int NT>
inline void weight_gradient_tile(const Problem<F>& P, const F* const* x, int count, const F* G, int64_t k0,
                                 int64_t i0, F* gW) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t T = P.T, d = D ? D : P.d, n = P.units();
    V acc[KB][NT] = {};
    for (int64_t t = 0; t < T; ++t)
        for (int s = 0; s < count; ++s) {
            const F* g = G + (t * GROUP + s) * n + i0;
            const F* xt = x[s] + t * d + k0;
            V gv[NT];
            for (int j = 0; j < NT; ++j) gv[j] = load(g + j * L);
            for (int q = 0; q < KB; ++q)
                for (int j = 0; j < NT; ++j) acc[q][j] += gv[j] * xt[q];
        }
    for (int q = 0; q < KB; ++q)
        for (int j = 0; j < NT; ++j) {
            F* out = gW + (k0 + q) * n + i0 + j * L;
            store(out, load(out) + acc[q][j]);
        }
}

template <typename F, int D, int NT>
void weight_gradient_tiles(const Problem<F>& P, const F* const* x, int count, const F* G, int64_t i0, F* gW) {
    const int64_t d = D ? D : P.d;
    constexpr int KB = 12 / NT;
    int64_t k0 = 0;
    for (; k0 + KB <= d; k0 += KB) weight_gradient_tile<F, D, KB, NT>(P, x, count, G, k0, i0, gW);
    remainder_tile<KB - 1>(d - k0, [&](auto rows) {
        weight_gradient_tile<F, D, decltype(rows)::value, NT>(P, x, count, G, k0, i0, gW);
    });
}

// Adds the gradient of the samples first[0..count-1] (slots 0..count-1 of the group's states,
// dL/df = weight[s]) into gW (d, G, Mp), gu (G, Mp), gc (G, Mp). Overwrites the states with
// g_t = dL/dz_t.
template <typename F, int D>
void group_backward(const Problem<F>& P, const int64_t* first, int count, const Scratch<F>& w,
                    const F* weight, F* gW, F* gu, F* gc) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t T = P.T, d = D ? D : P.d, n = P.units(), step = GROUP * n;
    const bool erf = P.activation != 0;
    F* G = erf ? w.Z : w.H;                       // g_t replaces z_t (erf) or h_t (tanh)
    for (int64_t i0 = 0; i0 < n; i0 += L) {
        V acc_c = {};
        for (int s = 0; s < count; ++s) acc_c += weight[s] * load(w.H + (T - 1) * step + s * n + i0);
        store(gc + i0, load(gc + i0) + acc_c);
    }
    for (int64_t i0 = 0; i0 < n; i0 += L) {
        const V u = load(P.u + i0), c = load(P.c + i0);
        V acc_u = {}, dh[GROUP];                  // dL/dh_t of the tile's chains, from dL/dh_T
        for (int s = 0; s < count; ++s) dh[s] = weight[s] * c;
        for (int64_t t = T - 1; t >= 0; --t)
            for (int s = 0; s < count; ++s) {
                const int64_t at = t * step + s * n + i0;
                V g;
                if (erf) {
                    g = dh[s] * erf_prime<F>(load(w.Z + at));
                } else {
                    const V h = load(w.H + at);
                    g = dh[s] * (F(1) - h * h);
                }
                if (t > 0) acc_u += g * load(w.H + at - step);
                store(G + at, g);
                dh[s] = g * u;
            }
        store(gu + i0, load(gu + i0) + acc_u);
    }
    const F* x[GROUP];
    for (int s = 0; s < count; ++s) x[s] = P.X + first[s] * T * d;
    int64_t i0 = 0;
    for (; i0 + 2 * L <= n; i0 += 2 * L) weight_gradient_tiles<F, D, 2>(P, x, count, G, i0, gW);
    for (; i0 < n; i0 += L) weight_gradient_tiles<F, D, 1>(P, x, count, G, i0, gW);
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
    F* base = buffer + worker * per_worker;
    const int64_t states = GROUP * P.units();
    if (!keep) return Scratch<F>{nullptr, base + states, base};
    return Scratch<F>{base, P.activation != 0 ? base + P.T * states : nullptr, nullptr};
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
// partial: (chunks, G (d + 2) Mp), the chunks' partial gradients (each chunk zeroes its row).
template <typename F, int D>
void loss_and_grad(const Problem<F>& P, F* f_out, F* gW, F* gu, F* gc, F* partial, F* buffer,
                   int64_t per_worker, int workers) {
    const int64_t chunks = (P.B + CHUNK - 1) / CHUNK, n = P.units();
    const int64_t nW = P.d * n, per = nW + 2 * n;
    for_each_chunk(chunks, workers, [&](int64_t ch, int worker) {
        const Scratch<F> w = scratch(P, buffer, per_worker, worker, true);
        F* out = partial + ch * per;
        std::fill(out, out + per, F(0));
        for_each_group(P.B, ch, [&](const int64_t* first, int count) {
            F f[GROUP], weight[GROUP];
            group_forward<F, D>(P, first, w, true, f);
            for (int s = 0; s < count; ++s) {
                f_out[first[s]] = f[s];
                weight[s] = P.grad_scale * (f[s] - P.y[first[s]]);
            }
            group_backward<F, D>(P, first, count, w, weight, out, out + nW, out + nW + n);
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

// Scratch per worker, in elements of F: for the loss and gradient every h_t of one group (and for
// erf every z_t), for the forward alone its carried state and a block of TIME_BLOCK steps of drives.
int64_t rnn_scratch(int64_t T, int64_t units, int activation, int keep) {
    const int64_t states = GROUP * units;
    return keep ? T * states * (activation == 0 ? 1 : 2) : (1 + TIME_BLOCK) * states;
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
