// Dtype name lookup, storage sizes, and the bit packing of sub-byte dtypes.
#include "safestructures/dtype.hpp"

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
