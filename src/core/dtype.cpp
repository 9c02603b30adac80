// Dtype name lookup, storage sizes, and the bit packing of sub-byte dtypes.
#include "safestructures/dtype.hpp"

#include <algorithm>

#include "safestructures/error.hpp"

namespace safestructures {

std::optional<Dtype> parse_dtype(std::string_view name) {
  for (std::size_t i = 0; i < dtype_count; ++i) {
    if (dtype_traits[i].name == name) return static_cast<Dtype>(i);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> dtype_storage_bytes(Dtype d, std::uint64_t elements) {
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, std::uint64_t{dtype_bits(d)}, &bits) || bits % 8 != 0) return std::nullopt;
  return bits / 8;
}

std::optional<std::uint64_t> byte_dtype_item_size(std::string_view name) {
  for (const auto& traits : dtype_traits) {
    if (traits.numpy_name == name) return traits.bits < 8 ? 1 : traits.bits / 8;  // ml_dtypes keeps a byte per element
  }
  for (const std::string_view ml_name : ml_dtypes_byte_names) {
    if (ml_name == name) return 1;
  }
  if (name == torch_complex32_name) return 4;
  // [<>|=]?[biufcUSMm]\d{1,3}, then for datetimes an optional [count unit].
  std::string_view rest = name;
  if (!rest.empty() && (rest[0] == '<' || rest[0] == '>' || rest[0] == '|' || rest[0] == '=')) rest.remove_prefix(1);
  if (rest.empty() || std::string_view("biufcUSMm").find(rest[0]) == std::string_view::npos) return std::nullopt;
  const char kind = rest[0];
  rest.remove_prefix(1);
  std::uint64_t size = 0;
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') size = size * 10 + static_cast<std::uint64_t>(rest[digits++] - '0');
  if (digits == 0 || digits > 3) return std::nullopt;
  rest.remove_prefix(digits);
  if (!rest.empty()) {
    if (rest.front() != '[' || rest.back() != ']') return std::nullopt;
    std::string_view unit = rest.substr(1, rest.size() - 2);
    while (!unit.empty() && unit.front() >= '0' && unit.front() <= '9') unit.remove_prefix(1);
    static constexpr std::string_view units[] = {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"};
    if (std::find(std::begin(units), std::end(units), unit) == std::end(units)) return std::nullopt;
  }
  return kind == 'U' ? size * 4 : size;
}

std::vector<std::byte> pack_sub_byte(Dtype d, std::span<const std::uint8_t> codes) {
  const unsigned bits = dtype_bits(d);
  if (bits >= 8) raise(ErrorCode::InvalidArgument, "pack_sub_byte: " + std::string(dtype_name(d)) + " is not a sub-byte dtype");
  const auto size = dtype_storage_bytes(d, codes.size());
  if (!size) {
    raise(ErrorCode::SubByteNotWhole, std::to_string(codes.size()) + " elements of " + std::string(dtype_name(d)) +
                                          " do not fill a whole number of bytes");
  }
  const std::uint8_t mask = static_cast<std::uint8_t>((1u << bits) - 1);
  std::vector<std::byte> out(*size);
  std::uint64_t bit = 0;
  for (std::size_t i = 0; i < codes.size(); ++i, bit += bits) {
    if (codes[i] & ~mask) {
      raise(ErrorCode::InvalidArgument, "element " + std::to_string(i) + " of a " + std::string(dtype_name(d)) +
                                            " array does not fit in " + std::to_string(bits) + " bits");
    }
    // An element can straddle two bytes (6-bit types), so write it as a 16-bit window.
    const unsigned shift = bit % 8;
    const std::size_t at = bit / 8;
    const unsigned window = static_cast<unsigned>(codes[i]) << shift;
    out[at] |= static_cast<std::byte>(window & 0xff);
    if (window > 0xff) out[at + 1] |= static_cast<std::byte>(window >> 8);
  }
  return out;
}

std::vector<std::uint8_t> unpack_sub_byte(Dtype d, std::span<const std::byte> packed, std::uint64_t elements) {
  const unsigned bits = dtype_bits(d);
  if (bits >= 8) raise(ErrorCode::InvalidArgument, "unpack_sub_byte: " + std::string(dtype_name(d)) + " is not a sub-byte dtype");
  const auto size = dtype_storage_bytes(d, elements);
  if (!size || *size != packed.size()) {
    raise(ErrorCode::SizeMismatch, std::to_string(elements) + " elements of " + std::string(dtype_name(d)) +
                                       " do not take " + std::to_string(packed.size()) + " bytes");
  }
  const unsigned mask = (1u << bits) - 1;
  std::vector<std::uint8_t> out(elements);
  std::uint64_t bit = 0;
  for (std::uint64_t i = 0; i < elements; ++i, bit += bits) {
    const unsigned shift = bit % 8;
    const std::size_t at = bit / 8;
    unsigned window = static_cast<unsigned>(packed[at]);
    if (shift + bits > 8) window |= static_cast<unsigned>(packed[at + 1]) << 8;
    out[i] = static_cast<std::uint8_t>((window >> shift) & mask);
  }
  return out;
}

}  // namespace safestructures
