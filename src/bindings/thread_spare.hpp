// A vector whose storage a thread keeps between the loads that use it: a tiny load's few allocations (the path of
// the node being built, the tensors built by name) cost it as much as building its objects.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace safestructures::bindings {

// Takes the thread's spare storage for `T` when made, and gives it back, emptied, when destroyed (kept only up to
// `MaxKept` items, so that one large load does not hold its memory for the thread's life). A load inside a load (a
// constructor loading again) finds the spare taken and starts empty. Destroyed with the GIL held when T holds Python
// objects: clearing them releases them; what the thread keeps at its exit is empty.
template <class T, std::size_t MaxKept>
class SpareVector {
 public:
  SpareVector() { items_.swap(spare()); }
  ~SpareVector() {
    items_.clear();
    std::vector<T>& kept = spare();
    if (items_.capacity() <= MaxKept && items_.capacity() > kept.capacity()) items_.swap(kept);
  }
  SpareVector(const SpareVector&) = delete;
  SpareVector& operator=(const SpareVector&) = delete;

  std::vector<T>& operator*() { return items_; }
  const std::vector<T>& operator*() const { return items_; }
  std::vector<T>* operator->() { return &items_; }
  const std::vector<T>* operator->() const { return &items_; }

 private:
  static std::vector<T>& spare() {
    thread_local std::vector<T> kept;
    return kept;
  }
  std::vector<T> items_;
};

}  // namespace safestructures::bindings
