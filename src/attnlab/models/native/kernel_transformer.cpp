// Fused forward pass and loss gradient of the multi-head kernel-regime Transformer
// (attnlab.models.kernel_transformer; spec kernel-regime-transformer.md, section 1).
//
// One sample at a time, one SIMD register of heads at a time (a tile): logits, softmax, attended token a_i,
// read-out s_i and M_i U_i never leave the cache, and the gradient of each sample is added into a
// per-chunk accumulator at once. Samples are split into fixed chunks of CHUNK and the chunks'
// partial sums are added in chunk order, so the result does not depend on the number of threads.
//
// Layouts (head index innermost, heads of each group padded with zeros to a multiple of the tile):
//   X (B, T, d), y (B), W (G, d, d, Mp) with W[g][k][e][h] = W_{head h of group g}[k][e],
//   U (G, d, Mp), c (G, Mp). A paired model has G = 2 groups (its two halves): both are computed
//   by the same code in the same order, so twin heads give bitwise opposite terms and the output
//   at the paired initialisation is exactly 0.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace {

constexpr int64_t CHUNK = 256;

#include "chunks.h"
#include "simd_math.h"

// sigma and sigma' of a tile of read-outs: tanh (activation 0) or erf(x / sqrt 2) (activation 1).
template <typename F>
inline void activate(int activation, Vec<F> s, Vec<F>& sigma, Vec<F>& sigma_prime) {
    if (activation == 0) {
        sigma = tanh<F>(s);
        sigma_prime = F(1) - sigma * sigma;
    } else {
        for (int64_t j = 0; j < lanes<F>; ++j) sigma[j] = std::erf(s[j] * F(0.70710678118654752440));
        sigma_prime = F(0.79788456080286535588) * exp_nonpositive<F>(F(-0.5) * s * s);
    }
}

template <typename F>
struct Problem {
    int64_t B, T, d, G, Mp;
    const F *X, *y, *W, *U, *c;
    int activation;
    F out_scale;      // 1 / sqrt(m)
    F grad_scale;     // dL/df_b = grad_scale * (f_b - y_b)
};

// Token dimensions compiled for a runtime d (d = 1, 2, 4, 8, 16 have their own instantiation).
constexpr int64_t MAX_D = 64;

// Per-thread scratch, carved from the caller's workspace (so that memory trackers see it): one
// tile's logits, attention and weighted read-outs over the tokens (T lanes each), and the
// quantities of every head for one sample, kept for its gradient.
template <typename F>
struct Scratch {
    F *z, *p, *pr, *sigma, *sigma_prime, *a, *g;
    static int64_t size(const Problem<F>& P) { return 3 * P.T * lanes<F> + 2 * P.G * P.Mp * (1 + P.d); }
    Scratch(const Problem<F>& P, F* base)
        : z(base), p(z + P.T * lanes<F>), pr(p + P.T * lanes<F>), sigma(pr + P.T * lanes<F>),
          sigma_prime(sigma + P.G * P.Mp), a(sigma_prime + P.G * P.Mp), g(a + P.G * P.d * P.Mp) {}
};

// acc_a[k] = sum_t p_t x_tk and acc_g[k] = sum_t p_t r_t x_tk for k = k0..k0+NB-1 of one tile.
template <typename F, int NB>
inline void attend_block(int64_t T, int64_t d, int64_t k0, const F* x, const F* p, const F* pr,
                         Vec<F>* acc_a, Vec<F>* acc_g) {
    Vec<F> aa[NB] = {}, gg[NB] = {};
    for (int64_t t = 0; t < T; ++t)
        for (int q = 0; q < NB; ++q) {
            const F xv = x[t * d + k0 + q];
            aa[q] += load(p + t * lanes<F>) * xv;
            gg[q] += load(pr + t * lanes<F>) * xv;
        }
    for (int q = 0; q < NB; ++q) {
        acc_a[k0 + q] = aa[q];
        acc_g[k0 + q] = gg[q];
    }
}

// f(X_b); keeps sigma(s_i), sigma'(s_i), a_i and M_i U_i of every head in `w`. D > 0: d == D.
template <typename F, int D>
F sample_forward(const Problem<F>& P, int64_t b, Scratch<F>& w) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>, DC = D ? D : MAX_D;
    const int64_t T = P.T, d = D ? D : P.d, Mp = P.Mp;
    const F* x = P.X + b * T * d;
    const F* xT = x + (T - 1) * d;
    F total = 0;
    for (int64_t grp = 0; grp < P.G; ++grp) {
        const F* W = P.W + grp * d * d * Mp;
        const F* U = P.U + grp * d * Mp;
        const F* c = P.c + grp * Mp;
        V lane_sum = {};
        for (int64_t h0 = 0; h0 < Mp; h0 += L) {
            V v[DC], u[DC];                                      // v = W_i x_T, u = U_i
            for (int64_t k = 0; k < d; ++k) {
                V acc = {};
                for (int64_t e = 0; e < d; ++e) acc += load(W + (k * d + e) * Mp + h0) * xT[e];
                v[k] = acc;
                u[k] = load(U + k * Mp + h0);
            }
            V top = splat<F>(-std::numeric_limits<F>::infinity());
            for (int64_t t = 0; t < T; ++t) {                    // logits z_t = x_t . v
                V z = {};
                for (int64_t k = 0; k < d; ++k) z += v[k] * x[t * d + k];
                store(w.z + t * L, z);
                top = z > top ? z : top;
            }
            V den = {}, acc_s = {};
            for (int64_t t = 0; t < T; ++t) {                    // p_t (unnormalised) and p_t (x_t . U)
                const V p = exp_nonpositive<F>(load(w.z + t * L) - top);
                V r = {};
                for (int64_t k = 0; k < d; ++k) r += u[k] * x[t * d + k];
                r *= p;
                den += p;
                acc_s += r;
                store(w.p + t * L, p);
                store(w.pr + t * L, r);
            }
            V acc_a[DC], acc_g[DC];
            int64_t k0 = 0;
            for (; k0 + 4 <= d; k0 += 4) attend_block<F, 4>(T, d, k0, x, w.p, w.pr, acc_a, acc_g);
            for (; k0 < d; ++k0) attend_block<F, 1>(T, d, k0, x, w.p, w.pr, acc_a, acc_g);
            const V inv = F(1) / den, s = acc_s * inv;
            for (int64_t k = 0; k < d; ++k) {
                const V ak = acc_a[k] * inv;
                store(w.a + (grp * d + k) * Mp + h0, ak);
                store(w.g + (grp * d + k) * Mp + h0, acc_g[k] * inv - s * ak);   // M_i U_i
            }
            V sg, sp;
            activate<F>(P.activation, s, sg, sp);
            store(w.sigma + grp * Mp + h0, sg);
            store(w.sigma_prime + grp * Mp + h0, sp);
            lane_sum += load(c + h0) * sg;
        }
        F group_sum = 0;
        for (int64_t j = 0; j < L; ++j) group_sum += lane_sum[j];
        total += group_sum;
    }
    return total * P.out_scale;
}

// Adds dL/dtheta of sample b (with dL/df_b = weight) into gW (G, d, d, Mp), gU (G, d, Mp), gc (G, Mp).
template <typename F, int D>
void sample_backward(const Problem<F>& P, int64_t b, const Scratch<F>& w, F weight, F* gW, F* gU, F* gc) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t d = D ? D : P.d, Mp = P.Mp;
    const F* xT = P.X + (b * P.T + P.T - 1) * d;
    for (int64_t grp = 0; grp < P.G; ++grp) {
        for (int64_t h0 = 0; h0 < Mp; h0 += L) {
            const int64_t h = grp * Mp + h0;
            store(gc + h, load(gc + h) + weight * load(w.sigma + h));
            const V e = weight * load(P.c + h) * load(w.sigma_prime + h);
            for (int64_t k = 0; k < d; ++k) {
                const int64_t row = (grp * d + k) * Mp + h0;
                store(gU + row, load(gU + row) + e * load(w.a + row));
                const V eg = e * load(w.g + row);
                F* gw = gW + ((grp * d + k) * d) * Mp + h0;
                for (int64_t q = 0; q < d; ++q) store(gw + q * Mp, load(gw + q * Mp) + eg * xT[q]);
            }
        }
    }
}

int64_t chunk_count(int64_t B) { return (B + CHUNK - 1) / CHUNK; }
int used_threads(int64_t B, int threads) { return int(std::max<int64_t>(1, std::min<int64_t>(threads, chunk_count(B)))); }

// Runs `work(chunk, thread)` for every chunk on used_threads(B, threads) threads, round-robin.
template <typename Work>
void for_each_chunk(int64_t B, int threads, Work work) {
    const int64_t chunks = chunk_count(B);
    threads = used_threads(B, threads);
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t)
        pool.emplace_back([&, t] { for (int64_t ch = t; ch < chunks; ch += threads) work(ch, t); });
    for (int64_t ch = 0; ch < chunks; ch += threads) work(ch, 0);
    for (auto& th : pool) th.join();
}

// Elements of F the caller provides as workspace: per-thread scratch, and with gradients one
// partial gradient per chunk.
template <typename F>
int64_t workspace_size(const Problem<F>& P, int threads, bool gradients) {
    const int64_t per = P.G * P.Mp * (P.d * P.d + P.d + 1);
    return used_threads(P.B, threads) * Scratch<F>::size(P) + (gradients ? chunk_count(P.B) * per : 0);
}

template <typename F, int D>
void forward(const Problem<F>& P, F* f, F* workspace, int threads) {
    for_each_chunk(P.B, threads, [&](int64_t ch, int thread) {
        Scratch<F> w(P, workspace + thread * Scratch<F>::size(P));
        for (int64_t b = ch * CHUNK; b < std::min(P.B, (ch + 1) * CHUNK); ++b) f[b] = sample_forward<F, D>(P, b, w);
    });
}

// Sum of squared residuals into *loss and the gradient into gW, gU, gc (layouts as the parameters).
template <typename F, int D>
void loss_and_grad(const Problem<F>& P, double* loss, F* gW, F* gU, F* gc, F* workspace, int threads) {
    const int64_t chunks = chunk_count(P.B);
    const int64_t nW = P.G * P.d * P.d * P.Mp, nU = P.G * P.d * P.Mp, nc = P.G * P.Mp, per = nW + nU + nc;
    F* partial = workspace + used_threads(P.B, threads) * Scratch<F>::size(P);
    std::vector<double> partial_loss(chunks, 0.0);
    for_each_chunk(P.B, threads, [&](int64_t ch, int thread) {
        Scratch<F> w(P, workspace + thread * Scratch<F>::size(P));
        F* out = partial + ch * per;
        std::fill(out, out + per, F(0));
        double sum = 0;
        for (int64_t b = ch * CHUNK; b < std::min(P.B, (ch + 1) * CHUNK); ++b) {
            const F residual = sample_forward<F, D>(P, b, w) - P.y[b];
            sum += double(residual) * double(residual);
            sample_backward<F, D>(P, b, w, P.grad_scale * residual, out, out + nW, out + nW + nU);
        }
        partial_loss[ch] = sum;
    });
    double total = 0;
    for (int64_t ch = 0; ch < chunks; ++ch) total += partial_loss[ch];
    *loss = total;
    F* outs[3] = {gW, gU, gc};
    const int64_t offsets[3] = {0, nW, nW + nU}, sizes[3] = {nW, nU, nc};
    sum_chunk_partials<F>(partial, chunks, per, outs, offsets, sizes);
}

template <typename F>
Problem<F> problem(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, const F* X, const F* y,
                   const F* W, const F* U, const F* c, int activation, double out_scale, double grad_scale) {
    return Problem<F>{B, T, d, G, Mp, X, y, W, U, c, activation, F(out_scale), F(grad_scale)};
}

// Calls body.template run<D>() with D = d for the token dimensions compiled as constants, else D = 0.
template <typename Body>
void dispatch(int64_t d, Body body) {
    switch (d) {
        case 1: body.template run<1>(); break;
        case 2: body.template run<2>(); break;
        case 4: body.template run<4>(); break;
        case 8: body.template run<8>(); break;
        case 16: body.template run<16>(); break;
        default: body.template run<0>();
    }
}

template <typename F>
struct ForwardBody {
    const Problem<F>& P; F *f, *workspace; int threads;
    template <int D> void run() { forward<F, D>(P, f, workspace, threads); }
};

template <typename F>
struct LossBody {
    const Problem<F>& P; double* loss; F *gW, *gU, *gc, *workspace; int threads;
    template <int D> void run() { loss_and_grad<F, D>(P, loss, gW, gU, gc, workspace, threads); }
};

}  // namespace

extern "C" {

int kt_max_d() { return int(MAX_D); }

#define KT_EXPORT(SUFFIX, F)                                                                            \
    int kt_lanes_##SUFFIX() { return int(lanes<F>); }                                                   \
    int64_t kt_workspace_##SUFFIX(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, int threads,  \
                                  int gradients) {                                                      \
        const auto P = problem<F>(B, T, d, G, Mp, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0, 0);\
        return workspace_size(P, threads, gradients != 0);                                              \
    }                                                                                                   \
    void kt_forward_##SUFFIX(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, const F* X,        \
                             const F* W, const F* U, const F* c, int activation, double out_scale,      \
                             F* f, F* workspace, int threads) {                                         \
        const auto P = problem<F>(B, T, d, G, Mp, X, nullptr, W, U, c, activation, out_scale, 0.0);     \
        dispatch(d, ForwardBody<F>{P, f, workspace, threads});                                          \
    }                                                                                                   \
    void kt_loss_and_grad_##SUFFIX(int64_t B, int64_t T, int64_t d, int64_t G, int64_t Mp, const F* X,  \
                                   const F* y, const F* W, const F* U, const F* c, int activation,      \
                                   double out_scale, double grad_scale, double* loss, F* gW, F* gU,     \
                                   F* gc, F* workspace, int threads) {                                  \
        const auto P = problem<F>(B, T, d, G, Mp, X, y, W, U, c, activation, out_scale, grad_scale);    \
        dispatch(d, LossBody<F>{P, loss, gW, gU, gc, workspace, threads});                              \
    }

KT_EXPORT(f32, float)
KT_EXPORT(f64, double)

}  // extern "C"
