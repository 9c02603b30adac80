// The context of one load: the caller's dict, or the defaults' made on first use (see load_context.hpp).
#include "load_context.hpp"

#include <Python.h>

#include "hooks.hpp"

namespace safestructures::bindings {
namespace {

// The context's keys the core reads and writes, made once per process (a key made per lookup, as
// PyDict_GetItemString does, costs more than the lookup).
PyObject* key(const char* text) {
  PyObject* made = PyUnicode_InternFromString(text);
  if (made == nullptr) throw nb::python_error();
  return made;
}
PyObject* where_key() {
  static PyObject* const k = key("where");
  return k;
}
PyObject* framework_key() {
  static PyObject* const k = key("framework");
  return k;
}
PyObject* numpy_bases_key() {
  static PyObject* const k = key("numpy_bases");
  return k;
}

// The value of `k` in `dict` (borrowed), or nullptr when it has none; an error in the lookup is raised.
PyObject* lookup(PyObject* dict, PyObject* k) {
  PyObject* value = PyDict_GetItemWithError(dict, k);
  if (value == nullptr && PyErr_Occurred()) throw nb::python_error();
  return value;
}

}  // namespace

PyObject* LoadContext::dict() const {
  if (lazy()) return made_.is_valid() ? made_.ptr() : nullptr;
  return given_.is_valid() && PyDict_Check(given_.ptr()) ? given_.ptr() : nullptr;
}

nb::handle LoadContext::get() {
  if (!lazy() || made_.is_valid()) return lazy() ? nb::handle(made_) : given_;
  nb::object made = hooks().default_context(file_size_);
  if (!PyDict_Check(made.ptr())) throw nb::type_error("safestructures' default_context hook must return a dict");
  if (!pending_bases_.empty()) {
    nb::dict bases;
    for (const auto& [name, array] : pending_bases_) {
      if (PyDict_SetItem(bases.ptr(), nb::str(name.data(), name.size()).ptr(), array.ptr()) != 0) throw nb::python_error();
    }
    if (PyDict_SetItem(made.ptr(), numpy_bases_key(), bases.ptr()) != 0) throw nb::python_error();
    pending_bases_.clear();
  }
  if (where_set_ && PyDict_SetItem(made.ptr(), where_key(), where_.ptr()) != 0) throw nb::python_error();
  made_ = std::move(made);
  return made_;
}

bool LoadContext::loads_numpy() const {
  if (lazy() && !made_.is_valid()) return true;  // the defaults name no framework
  PyObject* d = dict();
  if (d == nullptr) return false;
  PyObject* framework = PyDict_GetItemWithError(d, framework_key());  // borrowed
  if (framework == nullptr) {
    PyErr_Clear();
    return false;
  }
  return framework == Py_None || (PyUnicode_Check(framework) && PyUnicode_CompareWithASCIIString(framework, "numpy") == 0);
}

bool LoadContext::record_numpy_base(std::string_view name, nb::handle array) {
  if (lazy() && !made_.is_valid()) {
    pending_bases_.emplace_back(name, nb::borrow(array));
    return true;
  }
  PyObject* d = dict();
  if (d == nullptr) return false;
  PyObject* bases = lookup(d, numpy_bases_key());
  if (bases == nullptr) {
    nb::dict fresh;
    if (PyDict_SetItem(d, numpy_bases_key(), fresh.ptr()) != 0) throw nb::python_error();
    bases = fresh.ptr();  // the context holds it
  }
  if (!PyDict_Check(bases)) return false;
  if (PyDict_SetItem(bases, nb::str(name.data(), name.size()).ptr(), array.ptr()) != 0) throw nb::python_error();
  return true;
}

bool LoadContext::expose_where(nb::handle where) {
  if (where_set_ || !where.is_valid()) return false;
  if (PyObject* d = dict(); d != nullptr) {
    if (PyObject* before = lookup(d, where_key()); before != nullptr) where_before_ = nb::borrow(before);
    if (PyDict_SetItem(d, where_key(), where.ptr()) != 0) throw nb::python_error();
  } else if (!lazy()) {
    return false;  // not a dict: nowhere to put it
  }
  where_ = where;
  where_set_ = true;
  return true;
}

void LoadContext::restore_where() noexcept {
  if (!where_set_) return;
  where_set_ = false;
  PyObject* d = dict();
  if (d == nullptr) return;  // the defaults' dict, never made
  // An error on its way out of the load stays the one raised.
  nb::error_scope raised;
  const int failed = where_before_.is_valid() ? PyDict_SetItem(d, where_key(), where_before_.ptr()) : PyDict_DelItem(d, where_key());
  if (failed != 0) PyErr_Clear();
}

}  // namespace safestructures::bindings
