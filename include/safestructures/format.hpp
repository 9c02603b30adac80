// The format's vocabulary, its one owner: the reserved names, every node kind with its tag and traits (docs/format.md
// section 5), the fields that paths skip. Readers, writers and the Python layer (through _core) take names from here.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace safestructures {

// The metadata key holding the schema document, and the tensor a schema too large for the header is spilled into.
inline constexpr std::string_view schema_metadata_key = "__safestructures__";
inline constexpr std::string_view schema_spill_tensor = "__safestructures_schema__";
// The metadata key, in a sharded save's index and in each of its shards, of the id of the save that wrote them
// (section 7).
inline constexpr std::string_view save_id_key = "__safestructures_save__";
// The metadata key of the checksums a save writes with the data (section 8; include/safestructures/checksum.hpp).
inline constexpr std::string_view checksums_metadata_key = "__safestructures_checksums__";
// The metadata key marking a recording (section 9): a file appended to record by record, whose data buffer may run
// past its last tensor (data appended since the last commit). Its value is the recording layout's version.
inline constexpr std::string_view recording_metadata_key = "__safestructures_recording__";
inline constexpr std::string_view recording_layout_version = "1";
// The tensor a recording may begin its data with (section 9): zeros (a sparse hole on most file systems) that its
// header takes over as it grows, so that the data after it never moves. Never part of the recording's structure.
inline constexpr std::string_view recording_padding_tensor = "__safestructures_padding__";
// The last 8 bytes of a recording's commit journal (section 9): the header being written in place, kept at the end
// of the file until the in-place copy is whole.
inline constexpr std::string_view recording_journal_magic = "SSRJRNL1";
// The two metadata keys of safestructures 1.0.0 files (section 6).
inline constexpr std::string_view v1_schema_key = "_safestructures_schema_";
inline constexpr std::string_view v1_version_key = "_safestructures_schema_version_";
// The schema document's envelope: {"format":"safestructures","version":2,"root":NODE}.
inline constexpr std::string_view schema_format_name = "safestructures";
inline constexpr std::int64_t schema_version = 2;
// The limits of a save or load by default: levels of nesting in the data, and schema nodes (a header of the
// safetensors limit, 100 MB, cannot hold more than about 50 million).
inline constexpr std::uint32_t default_max_depth = 1000;
inline constexpr std::uint64_t default_max_nodes = 50'000'000;
// The members every tagged object may have besides its fields: its tag and its reference id.
inline constexpr std::string_view tag_member = "$";
inline constexpr std::string_view id_member = "#";
// The members of tensor and bytes nodes (docs/format.md sections 5.2 and 5.4), and the member naming a record's class;
// other kinds' members of the same names (an enum's "name", a timezone's "offset") are the same words. X(id, spelling).
#define SAFESTRUCTURES_FIELDS(X)                                                                                      \
  X(name, "name")           /* a tensor's safetensors tensor */                                                       \
  X(storage, "storage")     /* the tensor a view lies in (instead of name) */                                         \
  X(offset, "offset")       /* a view's first element in its storage */                                              \
  X(shape, "shape")         /* a view's shape, or an exact numpy dtype's */                                           \
  X(stride, "stride")       /* a view's strides, in elements */                                                       \
  X(dtype, "dtype")         /* a dtype safetensors lacks (stored as U8), a numpy dtype's exact name */                \
  X(framework, "fw")        /* the framework a tensor came from */                                                    \
  X(param, "param")         /* a torch Parameter */                                                                   \
  X(grad, "grad")           /* requires grad (torch, paddle) */                                                       \
  X(variable, "variable")   /* a TensorFlow variable */                                                               \
  X(trainable, "trainable") /* a TensorFlow variable's trainable */                                                   \
  X(pairs, "x2")            /* float4_e2m1fn_x2: two values a byte, the last dimension doubled */                     \
  X(tensor, "tensor")       /* long bytes' tensor */                                                                  \
  X(base64, "b64")          /* short bytes, inline */                                                                 \
  X(type, "type")           /* a record's class (module.QualName), a plugin's type */
namespace field {
#define SAFESTRUCTURES_FIELD(id, text) inline constexpr std::string_view id = text;
SAFESTRUCTURES_FIELDS(SAFESTRUCTURES_FIELD)
#undef SAFESTRUCTURES_FIELD
}  // namespace field

// How a kind's content is laid out, which is what walks over the tree need to know of it.
enum class Shape : std::uint8_t {
  Scalar,     // no children that walks descend into (they may still have fields)
  Sequence,   // "items": an array of nodes
  Mapping,    // "items": an array of [key, value] pairs (or a JSON object's members)
  Record,     // named fields
  Tensor,     // names a tensor of the file
  Reference,  // "#": an object written earlier (section 5.3)
};

// X(kind, name in messages, tag in the file or "" for plain JSON, shape, whether a "type" field names a class,
// whether it is a leaf, its own fields). Plain JSON kinds come first; the tagged float, str, list and dict share the
// kind of their plain form. A leaf stands for one value, not a level of nesting: neither the saver nor the loader
// counts it (Ellipsis, though a Scalar, is not one). Own fields are those the saver writes afresh for each node (a
// record's fields, a built-in subclass's content and attributes, a torch.Size's dims): a reference there would hand
// one container to every node naming it, each of which copies it (or rehashes its keys) again.
#define SAFESTRUCTURES_KINDS(X)                                                     \
  X(Null, "null", "", Scalar, false, false, "")                                     \
  X(Bool, "bool", "", Scalar, false, false, "")                                     \
  X(Int, "int", "", Scalar, false, false, "")                                       \
  X(BigInt, "bigint", "int", Scalar, false, true, "")                               \
  X(Float, "float", "float", Scalar, false, true, "")                               \
  X(String, "str", "str", Scalar, false, true, "")                                  \
  X(Bytes, "bytes", "bytes", Scalar, false, true, "")                               \
  X(ByteArray, "bytearray", "bytearray", Scalar, false, true, "")                   \
  X(List, "list", "list", Sequence, false, false, "")                               \
  X(Tuple, "tuple", "tuple", Sequence, false, false, "")                            \
  X(Set, "set", "set", Sequence, false, false, "")                                  \
  X(FrozenSet, "frozenset", "frozenset", Sequence, false, false, "")                \
  X(Dict, "dict", "dict", Mapping, false, false, "")                                \
  X(OrderedDict, "OrderedDict", "OrderedDict", Mapping, false, false, "")           \
  X(Counter, "Counter", "Counter", Mapping, false, false, "")                       \
  X(DefaultDict, "defaultdict", "defaultdict", Mapping, false, false, "")           \
  X(Deque, "deque", "deque", Sequence, false, false, "")                            \
  X(Range, "range", "range", Record, false, false, "")                              \
  X(Slice, "slice", "slice", Record, false, false, "")                              \
  X(Ellipsis, "Ellipsis", "Ellipsis", Scalar, false, false, "")                     \
  X(Complex, "complex", "complex", Record, false, false, "")                        \
  X(Datetime, "datetime", "datetime", Record, false, false, "")                     \
  X(Date, "date", "date", Record, false, false, "")                                 \
  X(Time, "time", "time", Record, false, false, "")                                 \
  X(Timedelta, "timedelta", "timedelta", Record, false, false, "")                  \
  X(Timezone, "timezone", "timezone", Record, false, false, "")                     \
  X(ZoneInfo, "ZoneInfo", "ZoneInfo", Record, false, false, "")                     \
  X(Decimal, "Decimal", "Decimal", Record, false, false, "")                        \
  X(Fraction, "Fraction", "Fraction", Record, false, false, "")                     \
  X(Uuid, "UUID", "UUID", Record, false, false, "")                                 \
  X(TorchDtype, "torch.dtype", "torch.dtype", Record, false, false, "")             \
  X(TorchDevice, "torch.device", "torch.device", Record, false, false, "")          \
  X(TorchSize, "torch.Size", "torch.Size", Record, false, false, "dims")            \
  X(Path, "path", "path", Record, false, false, "")                                 \
  X(NumpyScalar, "npscalar", "npscalar", Record, false, false, "")                  \
  X(Tensor, "tensor", "tensor", Tensor, false, true, "")                            \
  X(Dataclass, "dataclass", "dataclass", Record, true, false, "fields value")       \
  X(NamedTuple, "namedtuple", "namedtuple", Sequence, true, false, "fields items")  \
  X(Enum, "enum", "enum", Record, true, false, "")                                  \
  X(Object, "object", "object", Record, true, false, "value attrs")                 \
  X(Ext, "ext", "ext", Record, true, false, "")                                     \
  X(Plugin, "plugin", "plugin", Record, true, false, "")                            \
  X(Nested, "nested", "nested", Record, false, false, "")                           \
  X(Ref, "ref", "ref", Reference, false, true, "")

// What a node holds: one per Python type the format stores. TreeNode::kind() never answers Ref (references are
// followed).
enum class Kind : std::uint8_t {
#define SAFESTRUCTURES_KIND_ENUMERATOR(kind, name, tag, shape, names_class, leaf, own_fields) kind,
  SAFESTRUCTURES_KINDS(SAFESTRUCTURES_KIND_ENUMERATOR)
#undef SAFESTRUCTURES_KIND_ENUMERATOR
};

struct KindTraits {
  std::string_view id;    // the enumerator's name ("NamedTuple"): how the Python layer refers to a kind
  std::string_view name;  // "dict", "namedtuple", "torch.dtype"; "bigint" for ints outside int64
  std::string_view tag;   // the "$" of its tagged form; empty for null, bool and int64 ints
  Shape shape;
  bool names_class;       // its "type" field names a class (or a plugin's type)
  bool leaf;
  std::string_view own_fields;  // space-separated
};

inline constexpr KindTraits kind_table[] = {
#define SAFESTRUCTURES_KIND_TRAITS(kind, name, tag, shape, names_class, leaf, own_fields) \
  {#kind, name, tag, Shape::shape, names_class, leaf, own_fields},
    SAFESTRUCTURES_KINDS(SAFESTRUCTURES_KIND_TRAITS)
#undef SAFESTRUCTURES_KIND_TRAITS
};

inline const KindTraits& traits(Kind kind) { return kind_table[static_cast<std::size_t>(kind)]; }
// Whether `field` is one of the kind's own fields (see SAFESTRUCTURES_KINDS).
bool is_own_field(Kind kind, std::string_view field);
// The kind's name as messages write it.
inline std::string_view kind_name(Kind kind) { return traits(kind).name; }
// The kind a tag stands for, nullopt for a tag the format does not define.
std::optional<Kind> kind_of_tag(std::string_view tag);

// Wrapper fields ("fields", "items", "value", "attrs", "data", "tensors", "v") are not parts of paths or tensor
// names: a dataclass `out`'s field `logits` is `out.logits` (section 5.2).
inline constexpr std::string_view transparent_fields[] = {"fields", "items", "value", "attrs", "data", "tensors", "v"};
bool is_transparent_field(std::string_view field);

}  // namespace safestructures
