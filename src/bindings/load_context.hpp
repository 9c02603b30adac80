// The context of one load, as the adapters and constructors see it (a dict: framework, device, the classes it may
// build, its byte budget, and what the adapters record): the caller's, or, for a load that takes every default (the
// Python layer passes None), one the default_context hook makes only when something first asks for it. A tiny load
// of plain values and numpy arrays then never builds it: making it cost such a load a sixth of its time.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace safestructures::bindings {

namespace nb = nanobind;

class LoadContext {
 public:
  // The caller's context dict (None: the defaults, with the budget of an empty file).
  LoadContext(nb::handle given) : LoadContext(given, 0) {}  // NOLINT: implicit, as LoadOptions{..., context} gives it
  // The context of a load of a file of `file_size` bytes: `given`, or the defaults' when it is None.
  LoadContext(nb::handle given, std::uint64_t file_size) : given_(given), file_size_(file_size) {}

  // The dict, made now (with "where" when it is exposed) if the load has not needed it before.
  nb::handle get();
  // Whether tensors of plain numpy nodes load as numpy arrays: "framework" is None or "numpy" (the defaults' is None).
  bool loads_numpy() const;
  // Records an array built from tensor `name` in "numpy_bases", as frameworks/numpy.py's to_numpy does, for the views
  // after it (kept aside until the dict is made; `name` views the schema, which outlives the load). False when the
  // dict's "numpy_bases" is not one a load made.
  bool record_numpy_base(std::string_view name, nb::handle array);
  // While a loader lives, "where" holds `where` (a function giving the path of the node being built); the value it
  // replaced comes back when restore_where is called. False where there is no dict to hold it.
  bool expose_where(nb::handle where);
  void restore_where() noexcept;

 private:
  bool lazy() const { return given_.is_none(); }
  // The dict when there is one: the caller's, or the one made; nullptr when not made yet, or not a dict.
  PyObject* dict() const;

  nb::handle given_;
  std::uint64_t file_size_ = 0;
  nb::object made_;
  std::vector<std::pair<std::string_view, nb::object>> pending_bases_;
  nb::handle where_;
  nb::object where_before_;
  bool where_set_ = false;
};

}  // namespace safestructures::bindings
