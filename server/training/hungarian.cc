#include "server/training/hungarian.h"

#include <limits>
#include <stdexcept>

namespace detr::training {

// Shortest augmenting paths with row and column potentials (Kuhn-Munkres in
// the Jonker-Volgenant form): for each row, grow a path from it to a free
// column along reduced costs, then flip the path.
std::vector<int> SolveAssignment(const std::vector<double>& cost, int rows, int cols) {
  if (rows > cols) throw std::invalid_argument("SolveAssignment needs rows <= cols");
  if (static_cast<int>(cost.size()) != rows * cols) throw std::invalid_argument("cost has the wrong size");
  const double kInfinity = std::numeric_limits<double>::infinity();
  // 1-based with a virtual column 0, as the classic formulation.
  std::vector<double> row_potential(rows + 1, 0), column_potential(cols + 1, 0);
  std::vector<int> row_of_column(cols + 1, 0), previous(cols + 1, 0);
  for (int row = 1; row <= rows; ++row) {
    row_of_column[0] = row;
    int column = 0;
    std::vector<double> slack(cols + 1, kInfinity);
    std::vector<bool> used(cols + 1, false);
    do {
      used[column] = true;
      const int current_row = row_of_column[column];
      double delta = kInfinity;
      int next = 0;
      for (int j = 1; j <= cols; ++j) {
        if (used[j]) continue;
        const double reduced =
            cost[(current_row - 1) * cols + (j - 1)] - row_potential[current_row] - column_potential[j];
        if (reduced < slack[j]) {
          slack[j] = reduced;
          previous[j] = column;
        }
        if (slack[j] < delta) {
          delta = slack[j];
          next = j;
        }
      }
      for (int j = 0; j <= cols; ++j) {
        if (used[j]) {
          row_potential[row_of_column[j]] += delta;
          column_potential[j] -= delta;
        } else {
          slack[j] -= delta;
        }
      }
      column = next;
    } while (row_of_column[column] != 0);
    do {  // flip the augmenting path
      const int before = previous[column];
      row_of_column[column] = row_of_column[before];
      column = before;
    } while (column != 0);
  }
  std::vector<int> assignment(rows, -1);
  for (int j = 1; j <= cols; ++j) {
    if (row_of_column[j] != 0) assignment[row_of_column[j] - 1] = j - 1;
  }
  return assignment;
}

}  // namespace detr::training
