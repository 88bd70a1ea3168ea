// The deterministic reduction shared by the compiled kernels: each fixed chunk of samples adds its
// gradient into its own row of `partial` (chunks x per), and the rows are summed in chunk order, so
// the result does not depend on how many threads ran the chunks. Included inside each kernel's
// anonymous namespace.

#pragma once

#include <cstdint>

// outs[b][i] = sum over chunks ch of partial[ch * per + offsets[b] + i], for the three blocks b.
template <typename F>
void sum_chunk_partials(const F* partial, int64_t chunks, int64_t per, F* const outs[3], const int64_t offsets[3],
                        const int64_t sizes[3]) {
    for (int blk = 0; blk < 3; ++blk)
        for (int64_t i = 0; i < sizes[blk]; ++i) {
            F sum = 0;
            for (int64_t ch = 0; ch < chunks; ++ch) sum += partial[ch * per + offsets[blk] + i];
            outs[blk][i] = sum;
        }
}
