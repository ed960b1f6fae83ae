// Scratch memory for the kernels (kernel_support.h): one buffer per slot, grown but never shrunk.
#include <unordered_map>
#include <vector>
#include "kernel_support.h"

namespace lmf {

float* scratch(int slot, size_t floats) {
  static std::unordered_map<int, std::vector<float>> buffers;
  std::vector<float>& b = buffers[slot];
  if (b.size() < floats) b.resize(floats);
  return b.data();
}

}  // namespace lmf
