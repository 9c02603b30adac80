// numpy arrays over a file's bytes, made through numpy's C API instead of a call to numpy.frombuffer (whose argument
// parsing and failed writable-buffer request cost a tiny load a tenth of its time). numpy is not a build dependency
// and is not imported with safestructures: its API table is found through its capsule on the first array.
#include <Python.h>

#include <cstdint>
#include <limits>

#include "bindings.hpp"

namespace safestructures::bindings {
namespace {

// The few entries of numpy's C API table used here, by their fixed positions (numpy/__multiarray_api.h: the table is
// numpy's ABI, and these have kept their places since numpy 1.7, through 2.x). Flags as ndarraytypes.h defines them.
constexpr int api_version_at = 0;  // unsigned int PyArray_GetNDArrayCVersion(void)
constexpr int array_type_at = 2;   // PyTypeObject PyArray_Type
constexpr int new_from_descr_at = 94;
constexpr int set_base_object_at = 282;
constexpr int c_contiguous = 0x0001;
constexpr int aligned = 0x0100;  // recomputed by numpy from the data pointer
constexpr int writeable = 0x0400;
// The ABI versions whose tables are known to hold those entries there: numpy 1.x and 2.x.
constexpr unsigned abi_1 = 0x01000009, abi_2 = 0x02000000;

using NewFromDescr = PyObject* (*)(PyTypeObject*, PyObject* descr, int nd, const Py_ssize_t* dims, const Py_ssize_t* strides, void* data,
                                   int flags, PyObject* obj);
using SetBaseObject = int (*)(PyObject* array, PyObject* base);

struct NumpyApi {
  PyTypeObject* array_type = nullptr;
  NewFromDescr new_from_descr = nullptr;
  SetBaseObject set_base_object = nullptr;
};

// numpy's API, looked up once per process (numpy is never unloaded); nullptr when it cannot be used here: the caller
// then takes numpy.frombuffer's way.
const NumpyApi* numpy_api() {
  static bool looked = false;
  static NumpyApi api;
  if (looked) return api.array_type != nullptr ? &api : nullptr;
  looked = true;
  PyObject* module = PyImport_ImportModule("numpy._core._multiarray_umath");
  if (module == nullptr) {
    PyErr_Clear();
    module = PyImport_ImportModule("numpy.core._multiarray_umath");  // numpy 1.x
  }
  PyObject* capsule = module != nullptr ? PyObject_GetAttrString(module, "_ARRAY_API") : nullptr;
  Py_XDECREF(module);
  void** table = capsule != nullptr && PyCapsule_CheckExact(capsule) ? static_cast<void**>(PyCapsule_GetPointer(capsule, nullptr)) : nullptr;
  Py_XDECREF(capsule);  // the table lives as long as numpy's module, which is never unloaded
  if (table == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  const unsigned abi = reinterpret_cast<unsigned (*)()>(table[api_version_at])();
  if (abi != abi_1 && abi != abi_2) return nullptr;
  api.array_type = static_cast<PyTypeObject*>(table[array_type_at]);
  api.new_from_descr = reinterpret_cast<NewFromDescr>(table[new_from_descr_at]);
  api.set_base_object = reinterpret_cast<SetBaseObject>(table[set_base_object_at]);
  return &api;
}

}  // namespace

nb::object numpy_view(nb::handle buffer, nb::handle dtype, std::uint64_t itemsize, const std::vector<std::uint64_t>& shape,
                      std::uint64_t offset, std::uint64_t nbytes) {
  const NumpyApi* api = numpy_api();
  constexpr std::uint64_t max_size = static_cast<std::uint64_t>(std::numeric_limits<Py_ssize_t>::max());
  constexpr std::size_t max_dims = 32;  // numpy 1.x's limit (2.x takes 64): beyond it, numpy's own message
  if (api == nullptr || itemsize == 0 || nbytes % itemsize != 0 || offset > max_size || nbytes > max_size - offset ||
      shape.size() > max_dims) {
    return nb::object();
  }
  Py_ssize_t dims[max_dims];
  std::uint64_t elements = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] > max_size) return nb::object();
    dims[d] = static_cast<Py_ssize_t>(shape[d]);
    elements *= shape[d];  // the header's shape matches its byte range (checked when the file was read)
  }
  const std::uint64_t count = nbytes / itemsize;
  if (elements != count) return nb::object();
  // As frombuffer: an exporter that must be told when its buffer is released (a bytearray, a memoryview) is held
  // through a memoryview of it, whose export keeps it from being resized while the array lives; any other is held
  // itself. Writable when the buffer is.
  nb::object base;
  if (Py_TYPE(buffer.ptr())->tp_as_buffer != nullptr && Py_TYPE(buffer.ptr())->tp_as_buffer->bf_releasebuffer != nullptr) {
    base = nb::steal(PyMemoryView_FromObject(buffer.ptr()));
  } else {
    base = nb::borrow(buffer);
  }
  if (!base.is_valid()) {
    PyErr_Clear();
    return nb::object();
  }
  Py_buffer view;
  if (PyObject_GetBuffer(base.ptr(), &view, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    return nb::object();
  }
  char* data = static_cast<char*>(view.buf);
  const bool fits = static_cast<std::uint64_t>(view.len) >= offset + nbytes;
  const int flags = c_contiguous | aligned | (view.readonly ? 0 : writeable);
  PyBuffer_Release(&view);  // the base keeps the bytes where they are, as it does for frombuffer's arrays
  if (!fits) return nb::object();
  const Py_ssize_t flat_dims[1] = {static_cast<Py_ssize_t>(count)};
  Py_INCREF(dtype.ptr());  // taken by numpy
  nb::object flat = nb::steal(api->new_from_descr(api->array_type, dtype.ptr(), 1, flat_dims, nullptr, data + offset, flags, nullptr));
  if (!flat.is_valid() || api->set_base_object(flat.ptr(), base.release().ptr()) != 0) {
    PyErr_Clear();
    return nb::object();
  }
  if (shape.size() == 1) return flat;
  // Any other shape, as reshape gives it: a view of the flat array, with its flags.
  Py_INCREF(dtype.ptr());
  nb::object shaped =
      nb::steal(api->new_from_descr(api->array_type, dtype.ptr(), static_cast<int>(shape.size()), dims, nullptr, data + offset, flags, nullptr));
  if (!shaped.is_valid() || api->set_base_object(shaped.ptr(), flat.release().ptr()) != 0) {
    PyErr_Clear();
    return nb::object();
  }
  return shaped;
}

}  // namespace safestructures::bindings
