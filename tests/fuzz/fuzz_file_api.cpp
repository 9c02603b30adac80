// libFuzzer target: the C++ tree API (file.hpp). Arbitrary bytes go through File::from_buffer; for a file it opens,
// every node is read with every accessor its kind allows (references followed, never descended into twice), every
// tensor's bytes are touched, and a view's elements must lie within them; then verify(). safestructures::Error is the
// expected outcome for bad input; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "fuzz_common.hpp"
#include "safestructures/error.hpp"
#include "safestructures/file.hpp"

using namespace safestructures;

namespace {

// Bounds the walk of one input: a file may reach a node from many places (each reference is read, not descended).
struct Budget {
  std::size_t nodes = 20000;
};

void touch(std::span<const std::byte> bytes) {
  volatile unsigned char sink = 0;
  unsigned char x = 0;
  for (std::byte b : bytes) x ^= static_cast<unsigned char>(b);
  sink = sink ^ x;
}

void check_tensor(const Tensor& t) {
  touch(t.bytes());
  FUZZ_CHECK(t.bytes().size() * 8 == t.elements() * dtype_bits(t.dtype()) || !t.numpy_dtype().empty() || t.is_view(),
             "tensor " + quote_name(t.name()) + ": bytes() does not hold its elements");
  if (!t.is_view()) return;
  // Every element the view reaches lies within the storage's elements.
  const auto& shape = t.logical_shape();
  const auto& stride = t.view_stride();
  FUZZ_CHECK(shape.size() == stride.size(), "a view's shape and stride differ in length");
  bool empty = false;
  for (std::uint64_t d : shape) empty = empty || d == 0;
  if (empty) return;
  __int128 low = t.view_offset(), high = t.view_offset();
  for (std::size_t k = 0; k < shape.size(); ++k) {
    const __int128 reach = static_cast<__int128>(shape[k] - 1) * stride[k];
    (reach < 0 ? low : high) += reach;
  }
  FUZZ_CHECK(low >= 0 && high < static_cast<__int128>(t.elements()), "view of " + quote_name(t.name()) + " reaches outside its storage");
}

void walk(const TreeNode& node, Budget& budget, int depth) {
  if (budget.nodes == 0 || depth > 200) return;
  --budget.nodes;
  (void)node.path();
  (void)node.tag();
  (void)node.shared_id();
  fuzz::expect_ok_or_error("type_name", [&] { (void)node.type_name(); });
  switch (node.kind()) {
    case Kind::Bool: fuzz::expect_ok_or_error("as_bool", [&] { (void)node.as_bool(); }); break;
    case Kind::Int: fuzz::expect_ok_or_error("as_int", [&] { (void)node.as_int(); }); [[fallthrough]];
    case Kind::BigInt: fuzz::expect_ok_or_error("big_int_hex", [&] { (void)node.big_int_hex(); }); break;
    case Kind::Float: fuzz::expect_ok_or_error("as_double", [&] { (void)node.as_double(); }); break;
    case Kind::String: fuzz::expect_ok_or_error("as_string", [&] { (void)node.as_string(); }); break;
    case Kind::Bytes:
    case Kind::ByteArray: fuzz::expect_ok_or_error("as_bytes", [&] { (void)node.as_bytes(); }); break;
    case Kind::Tensor: fuzz::expect_ok_or_error("as_tensor", [&] { check_tensor(node.as_tensor()); }); break;
    default: break;
  }
  if (node.via_ref()) return;  // read, not descended: a cycle would never end
  if (node.is_sequence()) {
    fuzz::expect_ok_or_error("items", [&] {
      const std::size_t n = node.size();
      const auto items = node.items();
      FUZZ_CHECK(items.size() == n, "items() and size() disagree at " + node.path());
      for (const TreeNode& item : items) walk(item, budget, depth + 1);
      bool out_of_range = false;
      try {
        (void)node[n];
      } catch (const Error& e) {
        out_of_range = e.code() == ErrorCode::IndexOutOfRange;
      }
      FUZZ_CHECK(out_of_range, "an index past the end was not refused at " + node.path());
    });
  }
  if (node.is_mapping()) {
    fuzz::expect_ok_or_error("entries", [&] {
      for (const Entry& e : node.entries()) {
        walk(e.key, budget, depth + 1);
        walk(e.value, budget, depth + 1);
        if (e.key.kind() == Kind::String) {
          fuzz::expect_ok_or_error("operator[]", [&] { (void)node[e.key.as_string()]; });
        }
      }
    });
  }
  fuzz::expect_ok_or_error("fields", [&] {
    for (const Entry& e : node.fields()) walk(e.value, budget, depth + 1);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy that the file keeps alive: AddressSanitizer sees any read past its end.
  std::shared_ptr<std::byte[]> owner(new std::byte[size]);
  if (size) std::memcpy(owner.get(), data, size);
  std::optional<File> file;
  OpenOptions options;
  options.max_nodes = 100000;
  if (!fuzz::expect_ok_or_error("File::from_buffer", [&] {
        file.emplace(File::from_buffer(owner, std::span<const std::byte>(owner.get(), size), options));
      })) {
    return 0;
  }
  (void)file->metadata();
  Budget budget;
  fuzz::expect_ok_or_error("root", [&] { walk(file->root(), budget, 0); });
  fuzz::expect_ok_or_error("verify", [&] { (void)file->verify(); });
  return 0;
}
