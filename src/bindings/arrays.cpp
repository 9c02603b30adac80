// Turning the Python layer's (name, dtype, shape, ndarray) entries into core write requests, without copying data.
#include <Python.h>

#include "bindings.hpp"

namespace safestructures::bindings {
namespace {

std::string utf8_of(nb::handle text, ErrorCode code, std::string_view what) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw ArgumentError(code, std::string(what) + " " + py_text(nb::repr(text)) + " cannot be encoded as UTF-8");
  }
  return std::string(data, static_cast<std::size_t>(size));
}

[[noreturn]] void bad_tensor(const std::string& name, const std::string& why) {
  throw ArgumentError(ErrorCode::InvalidArgument, "tensor " + quote_name(name) + ": " + why);
}

struct OnRelease {
  Py_buffer* view;
  ~OnRelease() { PyBuffer_Release(view); }
};

std::uint64_t to_u64(nb::handle value, const std::string& name) {
  const long long v = PyLong_AsLongLong(value.ptr());
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    bad_tensor(name, "shape dimension is not an integer");
  }
  if (v < 0) bad_tensor(name, "negative shape dimension");
  return static_cast<std::uint64_t>(v);
}

// Checks what an array's memory holds against the tensor: its items' size, and its shape (`dims`).
void check_items(WriteTensor& t, std::uint64_t itemsize, const std::vector<std::uint64_t>& dims) {
  if (itemsize * 8 != dtype_bits(t.dtype)) {
    bad_tensor(t.name, "array items are " + std::to_string(itemsize) + " bytes, " + std::string(dtype_name(t.dtype)) +
                           " needs " + std::to_string(dtype_bits(t.dtype) / 8));
  }
  if (dims != t.shape) bad_tensor(t.name, "shape does not match the array");
}

// A plain numpy array of whole-byte items, read through the buffer protocol without asking for its format (which
// numpy then does not render, and which ml_dtypes' types lack): a fifth of what building its __array_interface__
// dict costs, which a tiny save pays for every array. False where the array does not export its buffer.
bool read_array_buffer(nb::handle array, WriteTensor& t) {
  if (!is_ndarray(array) || dtype_is_sub_byte(t.dtype)) return false;
  Py_buffer view;
  if (PyObject_GetBuffer(array.ptr(), &view, PyBUF_STRIDES) != 0) {
    PyErr_Clear();
    return false;
  }
  // The caller holds the array, which keeps its memory where the buffer said while the save reads it.
  OnRelease release{&view};
  std::vector<std::uint64_t> dims(view.shape, view.shape + view.ndim);
  check_items(t, static_cast<std::uint64_t>(view.itemsize), dims);
  t.data = static_cast<const std::byte*>(view.buf);
  // As __array_interface__ says it: no strides for a C-contiguous array.
  if (!PyBuffer_IsContiguous(&view, 'C')) t.strides.assign(view.strides, view.strides + view.ndim);
  return true;
}

// Reads the data pointer and strides of a numpy array through __array_interface__, which (unlike the buffer protocol
// with a format, and DLPack) works for every dtype, ml_dtypes' bfloat16 and float8 types included.
void read_array(nb::handle array, WriteTensor& t) {
  if (read_array_buffer(array, t)) return;
  nb::object interface = nb::getattr(array, "__array_interface__", nb::none());
  if (!nb::isinstance<nb::dict>(interface)) bad_tensor(t.name, "data is not a numpy array");
  nb::dict info = nb::borrow<nb::dict>(interface);
  nb::tuple data = nb::cast<nb::tuple>(info["data"]);
  t.data = reinterpret_cast<const std::byte*>(static_cast<std::uintptr_t>(nb::cast<unsigned long long>(data[0])));
  nb::tuple shape = nb::cast<nb::tuple>(info["shape"]);
  const std::string typestr = nb::cast<std::string>(info["typestr"]);
  const std::uint64_t itemsize = std::stoull(typestr.substr(2));
  if (dtype_is_sub_byte(t.dtype)) {
    // Sub-byte arrays arrive from the Python layer already packed, as contiguous uint8; the core checks the shape.
    std::uint64_t packed = 1, elements = 1;
    for (nb::handle d : shape) packed *= nb::cast<std::uint64_t>(d);
    for (std::uint64_t d : t.shape) elements *= d;
    const auto needed = dtype_storage_bytes(t.dtype, elements);
    if (itemsize != 1 || !info["strides"].is_none() || (needed && *needed != packed)) {
      bad_tensor(t.name, "packed " + std::string(dtype_name(t.dtype)) + " data has the wrong size");
    }
    return;
  }
  std::vector<std::uint64_t> dims;
  for (nb::handle d : shape) dims.push_back(nb::cast<std::uint64_t>(d));
  check_items(t, itemsize, dims);
  nb::handle strides = info["strides"];
  if (!strides.is_none()) {
    for (nb::handle s : strides) t.strides.push_back(nb::cast<std::int64_t>(s));
  }
}

}  // namespace

WriteTensor make_write_tensor(nb::handle name, nb::handle dtype, nb::handle shape, nb::handle array) {
  WriteTensor t;
  t.name = utf8_of(name, ErrorCode::InvalidName, "tensor name");
  const std::string dtype_text = nb::cast<std::string>(dtype);
  const auto parsed = parse_dtype(dtype_text);
  if (!parsed) bad_tensor(t.name, "unknown dtype " + quote_name(dtype_text));
  t.dtype = *parsed;
  for (nb::handle d : nb::cast<nb::tuple>(shape)) t.shape.push_back(to_u64(d, t.name));
  read_array(array, t);
  return t;
}

std::vector<WriteTensor> make_write_tensors(nb::handle entries) {
  std::vector<WriteTensor> tensors;
  nb::list list = nb::cast<nb::list>(entries);
  tensors.reserve(list.size());
  for (nb::handle entry : list) {
    nb::tuple items = nb::cast<nb::tuple>(entry);
    if (items.size() != 4) throw ArgumentError(ErrorCode::InvalidArgument, "each entry must be (name, dtype, shape, array)");
    tensors.push_back(make_write_tensor(items[0], items[1], items[2], items[3]));
  }
  return tensors;
}

std::optional<Metadata> make_metadata(nb::handle metadata) {
  if (metadata.is_none()) return std::nullopt;
  nb::dict dict = nb::cast<nb::dict>(metadata);
  Metadata out;
  out.reserve(dict.size());
  for (auto [key, value] : dict) {
    if (!PyUnicode_Check(key.ptr()) || !PyUnicode_Check(value.ptr())) {
      throw ArgumentError(ErrorCode::InvalidMetadata, std::string("metadata must map str to str, found ") + py_text(nb::repr(key)) + ": " +
                                                          py_text(nb::repr(value)));
    }
    out.emplace_back(utf8_of(key, ErrorCode::InvalidMetadata, "metadata key"), utf8_of(value, ErrorCode::InvalidMetadata, "metadata value"));
  }
  return out;
}

}  // namespace safestructures::bindings
