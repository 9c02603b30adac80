// The safetensors element types: names, bit widths, and packing of the sub-byte ones.
#pragma once

#include <iterator>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace safestructures {

// Each dtype: its name, its bit width, and the numpy dtype (ml_dtypes' for BF16, F8_*, F6_* and F4) whose elements
// these are, one per byte for sub-byte ones. In the reference implementation's order: the writer sorts by this order
// (descending), so it must not change.
#define SAFESTRUCTURES_DTYPES(X) \
  X(BOOL, 8, "bool") \
  X(F4, 4, "float4_e2m1fn") \
  X(F6_E2M3, 6, "float6_e2m3fn") \
  X(F6_E3M2, 6, "float6_e3m2fn") \
  X(U8, 8, "uint8") \
  X(I8, 8, "int8") \
  X(F8_E5M2, 8, "float8_e5m2") \
  X(F8_E4M3, 8, "float8_e4m3fn") \
  X(F8_E8M0, 8, "float8_e8m0fnu") \
  X(F8_E4M3FNUZ, 8, "float8_e4m3fnuz") \
  X(F8_E5M2FNUZ, 8, "float8_e5m2fnuz") \
  X(I16, 16, "int16") \
  X(U16, 16, "uint16") \
  X(F16, 16, "float16") \
  X(BF16, 16, "bfloat16") \
  X(I32, 32, "int32") \
  X(U32, 32, "uint32") \
  X(F32, 32, "float32") \
  X(C64, 64, "complex64") \
  X(F64, 64, "float64") \
  X(I64, 64, "int64") \
  X(U64, 64, "uint64")

#define SAFESTRUCTURES_DTYPE_ENUMERATOR(name, bits, numpy_name) name,
enum class Dtype : std::uint8_t { SAFESTRUCTURES_DTYPES(SAFESTRUCTURES_DTYPE_ENUMERATOR) };
#undef SAFESTRUCTURES_DTYPE_ENUMERATOR

struct DtypeTraits {
  std::string_view name;
  unsigned bits;
  std::string_view numpy_name;
};

#define SAFESTRUCTURES_DTYPE_TRAITS(name, bits, numpy_name) {#name, bits, numpy_name},
inline constexpr DtypeTraits dtype_traits[] = {SAFESTRUCTURES_DTYPES(SAFESTRUCTURES_DTYPE_TRAITS)};
#undef SAFESTRUCTURES_DTYPE_TRAITS
inline constexpr std::size_t dtype_count = std::size(dtype_traits);

constexpr std::string_view dtype_name(Dtype d) { return dtype_traits[static_cast<std::size_t>(d)].name; }
constexpr unsigned dtype_bits(Dtype d) { return dtype_traits[static_cast<std::size_t>(d)].bits; }
constexpr bool dtype_is_sub_byte(Dtype d) { return dtype_bits(d) < 8; }

// Exact spelling only ("F32", not "f32" or "float32"), as the reference reader requires.
std::optional<Dtype> parse_dtype(std::string_view name);

// Bytes taken by `elements` elements, or nullopt when the count overflows or, for sub-byte types, does not fill
// whole bytes.
std::optional<std::uint64_t> dtype_storage_bytes(Dtype d, std::uint64_t elements);

// The dtypes a tensor node may name ("dtype") for an array stored as the raw bytes of a 1-D U8 tensor (format.md 5.4):
// ml_dtypes' types safetensors lacks, by name; torch's complex32; a numeric, string or datetime dtype by its numpy
// type string ("<c16", ">i4", "|b1", "<U5", "|S3", "<M8[ns]": byte order, kind, size, a unit), never an object or a
// structured one, whose bytes would be pointers or fields; and the numpy names of the safetensors dtypes.
inline constexpr std::string_view ml_dtypes_byte_names[] = {"int2", "int4", "uint2", "uint4", "float8_e3m4", "float8_e4m3",
                                                            "float8_e4m3b11fnuz"};
inline constexpr std::string_view torch_complex32_name = "torch.complex32";
// The bytes of one element of such a dtype (a U string's 4 per character), or nullopt for a name none of these is.
std::optional<std::uint64_t> byte_dtype_item_size(std::string_view name);

// Sub-byte types (F4, F6_*) are packed as a little-endian bit stream: element i occupies bits [i*b, (i+1)*b) counting
// from bit 0 of byte 0. For F4 this is the usual "element 0 in the low nibble" layout. `codes` holds one element per
// byte in its low bits (how ml_dtypes stores them); the upper bits must be zero.
std::vector<std::byte> pack_sub_byte(Dtype d, std::span<const std::uint8_t> codes);
std::vector<std::uint8_t> unpack_sub_byte(Dtype d, std::span<const std::byte> packed, std::uint64_t elements);

}  // namespace safestructures
