// A C++ toy: sums a vector with the standard library (links libstdc++).
#include <iostream>
#include <numeric>
#include <vector>

int main() {
  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 1);
  std::cout << "sum " << std::accumulate(v.begin(), v.end(), 0) << std::endl;
  return 0;
}
