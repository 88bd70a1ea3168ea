// Register tiling shared by the compiled kernels: the rows left over after the full tiles of a small
// matrix product run as one tile of their own height (a row at a time would make them load-bound).
// Included inside each kernel's anonymous namespace.

#pragma once

#include <cstdint>
#include <type_traits>

// Calls tile(std::integral_constant<int, rows>) once for 0 < rows <= MAX (nothing for rows <= 0).
template <int MAX, typename Tile>
inline void remainder_tile(int64_t rows, Tile tile) {
    if constexpr (MAX > 0) {
        if (rows == MAX) tile(std::integral_constant<int, MAX>{});
        else remainder_tile<MAX - 1>(rows, tile);
    }
}
