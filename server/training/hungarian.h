// Minimum-cost assignment (the Hungarian method, O(rows^2 * cols)) for
// DETR's matcher: every target gets one distinct query.
#pragma once

#include <vector>

namespace detr::training {

/// cost: rows x cols, row-major, rows <= cols (targets x queries). Returns,
/// for each row, the column assigned to it; the sum of the chosen costs is
/// minimal among all assignments of distinct columns.
std::vector<int> SolveAssignment(const std::vector<double>& cost, int rows, int cols);

}  // namespace detr::training
