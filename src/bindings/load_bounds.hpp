// What keeps a load's work bounded by its file: objects by reference id with the size of their expansion, the
// budget for hashing shared structure, and the cap on keys of one hash value in a mapping or set.
#pragma once

#include <Python.h>
#include <nanobind/nanobind.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

namespace safestructures::bindings {

namespace nb = nanobind;

inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

// The objects defined so far, by reference id, each with its expanded size: the nodes a walk of the object visits
// when every reference under it is followed (what hashing or comparing it costs). A whole load indexes a vector by
// id, grown to the largest id defined (ids count the objects referenced twice, usually few, so the vector is not
// sized to the file); a partial load, which touches few ids of what may be a large file, a hash map (so that
// building many small parts, as describe() does, stays linear in the file).
class IdTable {
 public:
  struct Entry {
    nb::object object;
    std::uint64_t size = 1;
  };

  IdTable(std::size_t ids, bool sparse) : limit_(ids), sparse_(sparse) {}

  // Whether `id` is one a file of this many nodes may define (1 to the node count).
  bool in_range(std::int64_t id) const { return id >= 1 && static_cast<std::uint64_t>(id) < limit_; }

  // The entry of a defined id, or nullptr.
  Entry* find(std::int64_t id) {
    if (!in_range(id)) return nullptr;
    if (!sparse_) {
      const auto k = static_cast<std::size_t>(id);
      return k < dense_.size() && dense_[k].object.is_valid() ? &dense_[k] : nullptr;
    }
    const auto it = sparse_map_.find(id);
    return it == sparse_map_.end() ? nullptr : &it->second;
  }

  // The entry of an id in range, created empty when new. Growing the table moves its entries: hold ids, not
  // entries, across anything that may define another id.
  Entry& slot(std::int64_t id) {
    if (sparse_) return sparse_map_[id];
    const auto k = static_cast<std::size_t>(id);
    if (k >= dense_.size()) dense_.resize(std::max(k + 1, std::min(limit_, 2 * dense_.size())));
    return dense_[k];
  }

 private:
  std::size_t limit_;
  bool sparse_;
  std::vector<Entry> dense_;
  std::unordered_map<std::int64_t, Entry> sparse_map_;
};

// Counts the hash values of one mapping's keys or one set's items. Python keeps keys of one hash value on one probe
// sequence, so each insertion compares with every key of that value already there: a crafted run of equal hashes
// (big ints k * (2**61 - 1) all hash to 0) makes building the mapping quadratic. Nothing is counted until the
// container outgrows the longest run allowed, so small containers cost nothing.
class HashRuns {
 public:
  static constexpr std::uint32_t max_run = 32;

  // False when `hash` is now the hash of more than max_run keys.
  bool add(Py_hash_t hash) {
    if (counts_.empty()) {
      if (seen_ < max_run) {
        first_[seen_++] = hash;
        return true;
      }
      for (const Py_hash_t h : first_) ++counts_[h];
    }
    return ++counts_[hash] <= max_run;
  }

 private:
  std::array<Py_hash_t, max_run> first_{};
  std::uint32_t seen_ = 0;
  std::unordered_map<Py_hash_t, std::uint32_t> counts_;
};

// The nodes a load may walk in hashing and comparing keys, set items and the like, beyond its own walk of the schema:
// generous for any real data (whose keys are small and mostly unshared), and still linear in the file, where a key
// built from shared references (each level holding the one below twice) would expand exponentially.
inline std::uint64_t hash_budget(std::size_t nodes) { return saturating_add(16 * static_cast<std::uint64_t>(nodes), std::uint64_t{1} << 20); }

}  // namespace safestructures::bindings
