// The deterministic parallelism shared by the compiled kernels: each fixed chunk of samples adds its
// gradient into its own row of `partial` (chunks x per), and the rows are summed in chunk order, so
// the result does not depend on how many threads ran the chunks, nor on which thread ran which.
// Included inside each kernel's anonymous namespace.

#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

// Runs work(chunk, worker) for chunks 0..chunks-1 on `workers` threads (the caller's is worker 0).
// Each worker takes the next chunk nobody has taken, so a thread that starts late or runs on a
// slower core takes fewer chunks instead of holding up the others.
template <typename Work>
void for_each_chunk(int64_t chunks, int workers, Work work) {
    std::atomic<int64_t> next{0};
    const auto run = [&](int worker) {
        for (int64_t ch = next++; ch < chunks; ch = next++) work(ch, worker);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < workers; ++t) pool.emplace_back(run, t);
    run(0);
    for (auto& th : pool) th.join();
}

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
