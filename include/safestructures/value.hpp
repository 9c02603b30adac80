// Building a tree in C++ and saving it as a structured file that Python's safestructures.load_file reads back exactly.
#pragma once

#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/dtype.hpp"
#include "safestructures/file.hpp"

namespace safestructures {

// The safetensors dtype of a C++ element type, for Value::tensor over a std::vector.
template <class T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, bool>) return Dtype::BOOL;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::U8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return Dtype::I8;
  else if constexpr (std::is_same_v<T, std::int16_t>) return Dtype::I16;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return Dtype::U16;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::I32;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return Dtype::U32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::I64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return Dtype::U64;
  else if constexpr (std::is_same_v<T, float>) return Dtype::F32;
  else if constexpr (std::is_same_v<T, double>) return Dtype::F64;
  else if constexpr (std::is_same_v<T, std::complex<float>>) return Dtype::C64;
  else static_assert(sizeof(T) == 0, "no safetensors dtype for this element type; pass a Dtype and bytes instead");
}

// A value to save: None, bool, int, float, str, bytes, list, tuple, dict or tensor. Values behave like Python
// objects: a copy refers to the same object, and an object (a container, a tensor, bytes over 64 bytes) placed at
// several places in a tree is stored once, loading as one shared object (a tied weight stays tied).
class Value {
 public:
  // None.
  Value();
  Value(std::nullptr_t) : Value() {}
  Value(bool value);
  // Any integer; unsigned values past the int64 range are saved as Python's big ints.
  template <std::integral T>
    requires(!std::is_same_v<T, bool>)
  Value(T value) : Value(std::is_signed_v<T> ? from_signed(static_cast<std::int64_t>(value)) : from_unsigned(static_cast<std::uint64_t>(value))) {}
  // Any double: nan (sign and payload kept), infinities and -0.0 load as the same Python float.
  Value(double value);
  // UTF-8 text. A lone surrogate in its 3-byte (WTF-8) form is saved as the Python string holding it.
  Value(std::string value);
  Value(std::string_view value) : Value(std::string(value)) {}
  Value(const char* value) : Value(std::string(value)) {}

  // An int of any size as hexadecimal text, "0x1f" or "-0x1F". Raises InvalidArgument for other text.
  static Value big_int(std::string_view hex);
  // A copy of `data`; saved inline (base64) up to 64 bytes, as a U8 tensor beyond.
  static Value bytes(std::span<const std::byte> data);
  static Value list(std::initializer_list<Value> items = {});
  static Value tuple(std::initializer_list<Value> items = {});
  // An empty dict; add entries with set(). Keys may be any hashable value: a dict whose keys are all strings is stored
  // as a JSON object, any other in the pair form (section 5.2).
  static Value dict();
  // A numpy array over the caller's memory, which must stay valid until the save returns (or as long as `owner`
  // holds it): element (0, ..., 0) at data.data(), in C order when `strides` is empty, else `strides` (in bytes,
  // one per dimension) place each element; every element must lie inside `data`. Sub-byte dtypes are packed
  // (section 1) and contiguous. Raises InvalidArgument when the sizes do not agree.
  static Value tensor(Dtype dtype, std::vector<std::uint64_t> shape, std::span<const std::byte> data,
                      std::vector<std::int64_t> strides = {}, std::shared_ptr<const void> owner = nullptr);
  // A numpy array that owns its elements: the dtype follows T (float: F32, std::int64_t: I64...).
  template <class T>
  static Value tensor(std::vector<T> values, std::vector<std::uint64_t> shape) {
    static_assert(!std::is_same_v<T, bool>, "std::vector<bool> packs its bits: use std::vector<std::uint8_t> with Dtype::BOOL");
    auto owner = std::make_shared<const std::vector<T>>(std::move(values));
    return tensor(dtype_of<T>(), std::move(shape), std::as_bytes(std::span<const T>(*owner)), {}, owner);
  }

  Kind kind() const;
  // Items of a list or tuple, entries of a dict.
  std::size_t size() const;
  // Adds an item to a list or tuple (a tuple is only immutable once saved). Returns *this for chaining.
  Value& append(Value item);
  // Sets `key` of a dict, replacing the value of a key Python holds equal (1, 1.0 and True are one key).
  Value& set(Value key, Value value);
  // Empties a list, tuple or dict (a container that holds itself is only freed once emptied).
  void clear();

  struct Impl;

 private:
  explicit Value(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  static Value of(Impl impl);
  static Value from_signed(std::int64_t value);
  static Value from_unsigned(std::uint64_t value);
  friend const Impl& impl_of(const Value& value);
  std::shared_ptr<Impl> impl_;
};

struct SaveOptions {
  // fsync the file before it replaces the old one (see WriteOptions).
  bool fsync = false;
  // Levels of nesting allowed, as the Python saver counts them; deeper data raises NestingTooDeep.
  std::uint32_t max_depth = default_max_depth;
  // Write checksums with the data (docs/format.md section 8), which verify_file checks.
  bool checksums = true;
};

// Saves `root` atomically. Tensors are named by their path (`model.layers.0.weight`); `metadata` is the caller's
// string -> string metadata (safestructures' reserved keys are refused with InvalidMetadata). Data that Python could
// not load back (an unhashable dict key, a cycle through a tuple) raises InvalidArgument naming its path.
void save_file(const std::filesystem::path& path, const Value& root, const Metadata& metadata = {}, const SaveOptions& options = {});
// The same file as bytes.
std::vector<std::byte> save_bytes(const Value& root, const Metadata& metadata = {}, const SaveOptions& options = {});

}  // namespace safestructures
