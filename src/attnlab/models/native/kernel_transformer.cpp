// Fused forward pass and loss gradient of the multi-head kernel-regime Transformer
// (attnlab.models.kernel_transformer; spec kernel-regime-transformer.md, section 1).
//
// Samples go in blocks of SUB. For a block, v_i = W_i x_T of every head and sample is one small
// matrix product (register tiles of heads against rows of samples). Then, one sample at a time and
// one SIMD register of heads at a time (a tile), the logits and read-outs (blocks of tokens against
// the tile), the softmax, the attended token a_i, s_i and M_i U_i = sum_t p_t (r_t - s_i) x_t never
// leave the cache; a forward pass alone stops at s_i. The block's gradient follows: c and U sample
// by sample, W as a second small product over the block. Blocks lie in fixed chunks of CHUNK
// samples whose partial sums are added in chunk order, so the result does not depend on the number
// of threads; every lane's sums run in the same order whatever the tiling.
//
// Layouts (head index innermost, heads of each group padded with zeros to a multiple of the tile):
//   X (B, T, d), y (B), W (G, d, d, Mp) with W[g][k][e][h] = W_{head h of group g}[k][e],
//   U (G, d, Mp), c (G, Mp). A paired model has G = 2 groups (its two halves): both are computed
//   by the same code in the same order, so twin heads give bitwise opposite terms and the output
//   at the paired initialisation is exactly 0.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace {

constexpr int64_t CHUNK = 256;

#include "chunks.h"
#include "simd_math.h"
#include "tiles.h"

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
// tile's logits, attention and weighted read-outs over the tokens (T lanes each), and SUB slots for
// the quantities of every head of one sample, kept for the gradient of a block of SUB samples.
constexpr int64_t SUB = 16;

template <typename F>
struct Slot {
    F *sigma, *sigma_prime, *a, *g, *v;  // (G, Mp), (G, Mp), (G, d, Mp), (G, d, Mp), W x_T (G, d, Mp)
};

template <typename F>
struct Scratch {
    F *z, *p, *pr, *slots;
    int64_t slot_size, GMp, d;
    static int64_t slot_elements(const Problem<F>& P) { return P.G * P.Mp * (2 + 3 * P.d); }
    static int64_t size(const Problem<F>& P) { return 3 * P.T * lanes<F> + SUB * slot_elements(P); }
    Scratch(const Problem<F>& P, F* base)
        : z(base), p(z + P.T * lanes<F>), pr(p + P.T * lanes<F>), slots(pr + P.T * lanes<F>),
          slot_size(slot_elements(P)), GMp(P.G * P.Mp), d(P.d) {}
    Slot<F> slot(int64_t j) const {
        F* s = slots + j * slot_size;
        return Slot<F>{s, s + GMp, s + 2 * GMp, s + 2 * GMp + d * GMp, s + 2 * GMp + 2 * d * GMp};
    }
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

// z_t = x_t . v and r_t = x_t . u for TB tokens from t0 of one tile (v = W_i x_T, u = U_i per lane,
// row k at v + k * stride and u + k * stride), into z and r; returns the running maximum of the logits.
template <typename F, int D, int TB>
inline Vec<F> logits_block(int64_t d, int64_t t0, const F* x, const F* v, const F* u, int64_t stride, F* z,
                           F* r, Vec<F> top) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    V zz[TB] = {}, rr[TB] = {};
    for (int64_t k = 0; k < d; ++k) {
        const V vk = load(v + k * stride), uk = load(u + k * stride);
        for (int q = 0; q < TB; ++q) {
            const F xv = x[(t0 + q) * d + k];
            zz[q] += vk * xv;
            rr[q] += uk * xv;
        }
    }
    for (int q = 0; q < TB; ++q) {
        store(z + (t0 + q) * L, zz[q]);
        store(r + (t0 + q) * L, rr[q]);
        top = zz[q] > top ? zz[q] : top;
    }
    return top;
}

// v_j[grp][k][tiles] = sum_e W[grp][k][e][tiles] x_T,j[e] for JB samples j0.. and NT tiles from h0.
template <typename F, int JB, int NT>
inline void query_tile(const Problem<F>& P, const Scratch<F>& w, const F* const* xT, int64_t j0, int64_t grp,
                       int64_t k, int64_t h0) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t d = P.d, Mp = P.Mp;
    const F* W = P.W + (grp * d + k) * d * Mp + h0;
    V acc[JB][NT] = {};
    for (int64_t e = 0; e < d; ++e) {
        V wv[NT];
        for (int i = 0; i < NT; ++i) wv[i] = load(W + e * Mp + i * L);
        for (int j = 0; j < JB; ++j)
            for (int i = 0; i < NT; ++i) acc[j][i] += wv[i] * xT[j0 + j][e];
    }
    for (int j = 0; j < JB; ++j)
        for (int i = 0; i < NT; ++i) store(w.slot(j0 + j).v + (grp * d + k) * Mp + h0 + i * L, acc[j][i]);
}

template <typename F, int NT>
void query_tiles(const Problem<F>& P, const Scratch<F>& w, const F* const* xT, int64_t count, int64_t grp,
                 int64_t k, int64_t h0) {
    int64_t j0 = 0;
    for (; j0 + 6 <= count; j0 += 6) query_tile<F, 6, NT>(P, w, xT, j0, grp, k, h0);
    remainder_tile<5>(count - j0, [&](auto rows) {
        query_tile<F, decltype(rows)::value, NT>(P, w, xT, j0, grp, k, h0);
    });
}

// W_i x_T of every head for the samples b0..b0+count-1 into slots 0..count-1: a small matrix
// product over the block (each lane sums over e in order, whatever the blocking).
template <typename F>
void block_queries(const Problem<F>& P, int64_t b0, int64_t count, const Scratch<F>& w) {
    constexpr int64_t L = lanes<F>;
    const F* xT[SUB];
    for (int64_t j = 0; j < count; ++j) xT[j] = P.X + ((b0 + j) * P.T + P.T - 1) * P.d;
    for (int64_t grp = 0; grp < P.G; ++grp)
        for (int64_t k = 0; k < P.d; ++k) {
            int64_t h0 = 0;
            for (; h0 + 2 * L <= P.Mp; h0 += 2 * L) query_tiles<F, 2>(P, w, xT, count, grp, k, h0);
            for (; h0 < P.Mp; h0 += L) query_tiles<F, 1>(P, w, xT, count, grp, k, h0);
        }
}

// f(X_b) from v = W_i x_T in `out`. With GRAD also keeps sigma(s_i), sigma'(s_i), a_i and M_i U_i of every head in `w` for the
// gradient (a forward pass alone needs only the softmax-weighted read-out s_i). D > 0: d == D.
template <typename F, int D, bool GRAD>
F sample_forward(const Problem<F>& P, int64_t b, Scratch<F>& w, Slot<F> out) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>, DC = D ? D : MAX_D;
    const int64_t T = P.T, d = D ? D : P.d, Mp = P.Mp;
    const F* x = P.X + b * T * d;
    F total = 0;
    for (int64_t grp = 0; grp < P.G; ++grp) {
        const F* U = P.U + grp * d * Mp;
        const F* c = P.c + grp * Mp;
        V lane_sum = {};
        for (int64_t h0 = 0; h0 < Mp; h0 += L) {
            const F* v = out.v + grp * d * Mp + h0;               // v = W_i x_T
            V top = splat<F>(-std::numeric_limits<F>::infinity());
            int64_t t = 0;
            for (; t + 6 <= T; t += 6) top = logits_block<F, D, 6>(d, t, x, v, U + h0, Mp, w.z, w.pr, top);
            remainder_tile<5>(T - t, [&](auto rows) {
                top = logits_block<F, D, decltype(rows)::value>(d, t, x, v, U + h0, Mp, w.z, w.pr, top);
            });
            V den = {}, acc_s = {};
            for (t = 0; t < T; ++t) {                            // p_t (unnormalised) and p_t r_t
                const V p = exp_nonpositive<F>(load(w.z + t * L) - top);
                const V pr = p * load(w.pr + t * L);
                den += p;
                acc_s += pr;
                if (GRAD) {
                    store(w.p + t * L, p);
                    store(w.pr + t * L, pr);
                }
            }
            const V inv = F(1) / den, s = acc_s * inv;
            if (GRAD) {
                for (t = 0; t < T; ++t)                          // p_t (r_t - s): M U centred
                    store(w.pr + t * L, load(w.pr + t * L) - s * load(w.p + t * L));
                V acc_a[DC], acc_g[DC];
                int64_t k0 = 0;
                for (; k0 + 6 <= d; k0 += 6) attend_block<F, 6>(T, d, k0, x, w.p, w.pr, acc_a, acc_g);
                remainder_tile<5>(d - k0, [&](auto rows) {
                    attend_block<F, decltype(rows)::value>(T, d, k0, x, w.p, w.pr, acc_a, acc_g);
                });
                for (int64_t k = 0; k < d; ++k) {
                    store(out.a + (grp * d + k) * Mp + h0, acc_a[k] * inv);
                    store(out.g + (grp * d + k) * Mp + h0, acc_g[k] * inv);   // M_i U_i
                }
            }
            V sg, sp;
            activate<F>(P.activation, s, sg, sp);
            if (GRAD) {
                store(out.sigma + grp * Mp + h0, sg);
                store(out.sigma_prime + grp * Mp + h0, sp);
            }
            lane_sum += load(c + h0) * sg;
        }
        F group_sum = 0;
        for (int64_t j = 0; j < L; ++j) group_sum += lane_sum[j];
        total += group_sum;
    }
    return total * P.out_scale;
}

// gW[grp][k][q][tiles] += sum_j eg_j[grp][k][tiles] x_T,j[q] for KB inputs q0.. and NT tiles from
// column h (h = grp Mp + h0), over the samples j of a block in order.
template <typename F, int KB, int NT>
inline void weight_gradient_tile(const Problem<F>& P, const Scratch<F>& w, const F* const* xT, int64_t count,
                                 int64_t grp, int64_t k, int64_t q0, int64_t h0, F* gW) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t d = P.d, Mp = P.Mp;
    V acc[KB][NT] = {};
    for (int64_t j = 0; j < count; ++j) {
        const F* eg = w.slot(j).g + (grp * d + k) * Mp + h0;
        V e[NT];
        for (int i = 0; i < NT; ++i) e[i] = load(eg + i * L);
        for (int q = 0; q < KB; ++q)
            for (int i = 0; i < NT; ++i) acc[q][i] += e[i] * xT[j][q0 + q];
    }
    for (int q = 0; q < KB; ++q)
        for (int i = 0; i < NT; ++i) {
            F* out = gW + ((grp * d + k) * d + q0 + q) * Mp + h0 + i * L;
            store(out, load(out) + acc[q][i]);
        }
}

template <typename F, int NT>
void weight_gradient_tiles(const Problem<F>& P, const Scratch<F>& w, const F* const* xT, int64_t count,
                           int64_t grp, int64_t k, int64_t h0, F* gW) {
    constexpr int KB = 12 / NT;
    int64_t q0 = 0;
    for (; q0 + KB <= P.d; q0 += KB) weight_gradient_tile<F, KB, NT>(P, w, xT, count, grp, k, q0, h0, gW);
    remainder_tile<KB - 1>(P.d - q0, [&](auto rows) {
        weight_gradient_tile<F, decltype(rows)::value, NT>(P, w, xT, count, grp, k, q0, h0, gW);
    });
}

// Adds dL/dtheta of the samples b0..b0+count-1 (slots 0..count-1, dL/df_b = weight[j]) into
// gW (G, d, d, Mp), gU (G, d, Mp), gc (G, Mp): c and U sample by sample, W as a small matrix
// product over the block (the slots' M U become e M U on the way).
template <typename F>
void block_backward(const Problem<F>& P, int64_t b0, int64_t count, const Scratch<F>& w, const F* weight,
                    F* gW, F* gU, F* gc) {
    using V = Vec<F>;
    constexpr int64_t L = lanes<F>;
    const int64_t d = P.d, Mp = P.Mp;
    const F* xT[SUB];
    for (int64_t j = 0; j < count; ++j) {
        xT[j] = P.X + ((b0 + j) * P.T + P.T - 1) * d;
        const Slot<F> s = w.slot(j);
        for (int64_t grp = 0; grp < P.G; ++grp)
            for (int64_t h0 = 0; h0 < Mp; h0 += L) {
                const int64_t h = grp * Mp + h0;
                store(gc + h, load(gc + h) + weight[j] * load(s.sigma + h));
                const V e = weight[j] * load(P.c + h) * load(s.sigma_prime + h);
                for (int64_t k = 0; k < d; ++k) {
                    const int64_t row = (grp * d + k) * Mp + h0;
                    store(gU + row, load(gU + row) + e * load(s.a + row));
                    store(s.g + row, e * load(s.g + row));
                }
            }
    }
    for (int64_t grp = 0; grp < P.G; ++grp)
        for (int64_t k = 0; k < d; ++k) {
            int64_t h0 = 0;
            for (; h0 + 2 * L <= Mp; h0 += 2 * L) weight_gradient_tiles<F, 2>(P, w, xT, count, grp, k, h0, gW);
            for (; h0 < Mp; h0 += L) weight_gradient_tiles<F, 1>(P, w, xT, count, grp, k, h0, gW);
        }
}

int64_t chunk_count(int64_t B) { return (B + CHUNK - 1) / CHUNK; }
int used_threads(int64_t B, int threads) { return int(std::max<int64_t>(1, std::min<int64_t>(threads, chunk_count(B)))); }

// Elements of F the caller provides as workspace: per-thread scratch, and with gradients one
// partial gradient per chunk.
template <typename F>
int64_t workspace_size(const Problem<F>& P, int threads, bool gradients) {
    const int64_t per = P.G * P.Mp * (P.d * P.d + P.d + 1);
    return used_threads(P.B, threads) * Scratch<F>::size(P) + (gradients ? chunk_count(P.B) * per : 0);
}

template <typename F, int D>
void forward(const Problem<F>& P, F* f, F* workspace, int threads) {
    for_each_chunk(chunk_count(P.B), used_threads(P.B, threads), [&](int64_t ch, int thread) {
        Scratch<F> w(P, workspace + thread * Scratch<F>::size(P));
        const int64_t end = std::min(P.B, (ch + 1) * CHUNK);
        for (int64_t b0 = ch * CHUNK; b0 < end; b0 += SUB) {
            const int64_t count = std::min(SUB, end - b0);
            block_queries<F>(P, b0, count, w);
            for (int64_t j = 0; j < count; ++j) f[b0 + j] = sample_forward<F, D, false>(P, b0 + j, w, w.slot(j));
        }
    });
}

// Sum of squared residuals into *loss and the gradient into gW, gU, gc (layouts as the parameters).
template <typename F, int D>
void loss_and_grad(const Problem<F>& P, double* loss, F* gW, F* gU, F* gc, F* workspace, int threads) {
    const int64_t chunks = chunk_count(P.B);
    const int64_t nW = P.G * P.d * P.d * P.Mp, nU = P.G * P.d * P.Mp, nc = P.G * P.Mp, per = nW + nU + nc;
    F* partial = workspace + used_threads(P.B, threads) * Scratch<F>::size(P);
    std::vector<double> partial_loss(chunks, 0.0);
    for_each_chunk(chunks, used_threads(P.B, threads), [&](int64_t ch, int thread) {
        Scratch<F> w(P, workspace + thread * Scratch<F>::size(P));
        F* out = partial + ch * per;
        std::fill(out, out + per, F(0));
        double sum = 0;
        const int64_t end = std::min(P.B, (ch + 1) * CHUNK);
        for (int64_t b0 = ch * CHUNK; b0 < end; b0 += SUB) {
            const int64_t count = std::min(SUB, end - b0);
            F weight[SUB];
            block_queries<F>(P, b0, count, w);
            for (int64_t j = 0; j < count; ++j) {
                const F residual = sample_forward<F, D, true>(P, b0 + j, w, w.slot(j)) - P.y[b0 + j];
                sum += double(residual) * double(residual);
                weight[j] = P.grad_scale * residual;
            }
            block_backward<F>(P, b0, count, w, weight, out, out + nW, out + nW + nU);
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
        case 17: body.template run<17>(); break;
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
