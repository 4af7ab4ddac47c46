// Vectors whose storage starts on a 64-byte cache line. The kernels' scratch (packed activations,
// attention accumulators and queries) is read and written a vector at a time; from malloc it starts
// 16 bytes into a line as often as not, and a 64-byte access then touches two lines.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace lk {

template <class T>
struct LineAllocator {
  using value_type = T;
  LineAllocator() = default;
  template <class U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const LineAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const LineAllocator<U>&) const {
    return false;
  }
};

template <class T>
using LineVector = std::vector<T, LineAllocator<T>>;

}  // namespace lk
