// The safestructures._core extension: the mapped-file buffer, the entry points, the storage of the Python layer's
// hooks.
#include <Python.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <limits>
#include <memory>
#include <optional>

#include "bindings.hpp"
#include "hooks.hpp"
#include "safestructures/format.hpp"
#include "safestructures/path_text.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/tree_reader.hpp"
#include "safestructures/writer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace safestructures::bindings {
namespace {

// The hooks, set once at import and deliberately leaked: destroying Python objects after the interpreter has
// finalized would crash at exit.
Hooks* installed = nullptr;

// Exposes a reader's bytes (a private copy-on-write mapping, so writable) through the buffer protocol, so numpy
// arrays can view the mapping directly and keep it alive through their base object.
struct FileBuffer {
  std::shared_ptr<const void> owner;
  std::byte* data = nullptr;
  std::size_t size = 0;
};

int file_buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  FileBuffer* buffer = nb::inst_ptr<FileBuffer>(self);
  // A zero-length file still needs a valid pointer for numpy.
  static char empty = 0;
  void* data = buffer->data ? static_cast<void*>(buffer->data) : static_cast<void*>(&empty);
  return PyBuffer_FillInfo(view, self, data, static_cast<Py_ssize_t>(buffer->size), 0, flags);
}

PyType_Slot file_buffer_slots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(file_buffer_getbuffer)},
    {0, nullptr},
};

}  // namespace

const Hooks& hooks() {
  if (installed == nullptr) throw nb::type_error("safestructures._core hooks are not installed; import safestructures first");
  return *installed;
}

void set_hooks(nb::dict given) {
  installed = new Hooks{
      given["classify"],          given["reduce"],      given["array_entry"], given["factory_name"],
      given["construct"],         given["factories"],   given["make_tensor"], given["numpy_dtype"], given["load_bar"],
      given["ordered_dict_type"],
      given["defaultdict_type"],  given["deque_type"],  given["counter_type"], given["default_context"],
  };
}

nb::object metadata_to_python(const Header& header, bool user_only) {
  // A file whose metadata is only its checksums has none of the caller's, as it was saved.
  const bool only_checksums = header.metadata.size() == 1 && header.metadata.front().first == checksums_metadata_key;
  if (!header.has_metadata || only_checksums) return nb::none();
  nb::dict out;
  for (const auto& [key, value] : user_only ? user_metadata(header) : header.metadata) {
    // The checksums are the file's own, never the caller's metadata (a plain file's included).
    if (key != checksums_metadata_key) out[py_str(key)] = py_str(value);
  }
  return out;
}

nb::tuple shape_tuple(const std::vector<std::uint64_t>& shape) {
  nb::tuple out = nb::steal<nb::tuple>(PyTuple_New(static_cast<Py_ssize_t>(shape.size())));
  for (std::size_t d = 0; d < shape.size(); ++d) PyTuple_SET_ITEM(out.ptr(), d, PyLong_FromUnsignedLongLong(shape[d]));
  return out;
}

nb::list tensor_table(const Header& header) {
  nb::list tensors;
  for (const TensorInfo& t : header.tensors) {
    tensors.append(nb::make_tuple(py_str(t.name), py_str(dtype_name(t.dtype)), shape_tuple(t.shape),
                                  header.data_offset() + t.begin, t.nbytes()));
  }
  return tensors;
}

Shard open_mapped(const std::filesystem::path& path, std::uint64_t max_header_size, Access access) {
  std::optional<Reader> reader;
  {
    nb::gil_scoped_release release;
    reader.emplace(Reader::open(path, max_header_size, access));
  }
  // Reader::open always owns a MappedFile; only the mapping needs to outlive this call, not the parsed header.
  const auto mapping = std::static_pointer_cast<const MappedFile>(reader->owner());
  nb::object buffer = nb::cast(FileBuffer{reader->owner(), mapping->bytes().data(), mapping->bytes().size()});
  return Shard{std::move(*reader), buffer};
}

namespace {

// Calls use(reader, size of the buffer) on the file in a caller's buffer, held for the call only: the arrays built over
// `data` hold buffer exports of their own.
template <class Use>
nb::tuple with_buffer(nb::handle data, std::uint64_t max_header_size, Use&& use) {
  Py_buffer view;
  if (PyObject_GetBuffer(data.ptr(), &view, PyBUF_SIMPLE) != 0) throw nb::python_error();
  std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> release(&view, PyBuffer_Release);
  const std::span<const std::byte> bytes(static_cast<const std::byte*>(view.buf), static_cast<std::size_t>(view.len));
  return use(Reader::from_buffer(nullptr, bytes, !view.readonly, max_header_size), bytes.size());
}

nb::tuple py_read_file(const std::filesystem::path& path, std::uint64_t max_header_size) {
  const Shard file = open_mapped(path, max_header_size);
  const Header& header = file.reader.header();
  return nb::make_tuple(file.buffer, metadata_to_python(header, false), tensor_table(header));
}

nb::tuple py_read_bytes(nb::handle data, std::uint64_t max_header_size) {
  return with_buffer(data, max_header_size, [](const Reader& reader, std::uint64_t) {
    return nb::make_tuple(metadata_to_python(reader.header(), false), tensor_table(reader.header()));
  });
}

// A bytes object of `size` bytes that `fill` writes into with the GIL released: the file's bytes are never held twice.
template <class Fill>
nb::bytes filled_bytes(std::uint64_t size, Fill&& fill) {
  PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
  if (out == nullptr) throw nb::python_error();
  nb::bytes result = nb::steal<nb::bytes>(out);
  nb::gil_scoped_release release;
  fill(std::span<std::byte>(reinterpret_cast<std::byte*>(PyBytes_AS_STRING(out)), size));
  return result;
}

void py_write_file(const std::filesystem::path& path, nb::handle entries, nb::handle metadata, bool fsync, bool checksums,
                   nb::handle progress) {
  const std::vector<WriteTensor> tensors = make_write_tensors(entries);
  const std::optional<Metadata> meta = make_metadata(metadata);
  const Layout layout = as_argument_error([&] { return plan_layout(tensors, meta ? &*meta : nullptr, default_max_header_size, {}, checksums); });
  const auto report = progress_reporter(progress, layout.data_size);
  nb::gil_scoped_release release;
  as_argument_error([&] { write_file(path, layout, tensors, WriteOptions{fsync, checksums, report}); });
}

nb::bytes py_write_bytes(nb::handle entries, nb::handle metadata, bool checksums) {
  const std::vector<WriteTensor> tensors = make_write_tensors(entries);
  const std::optional<Metadata> meta = make_metadata(metadata);
  const Layout layout = as_argument_error([&] { return plan_layout(tensors, meta ? &*meta : nullptr, default_max_header_size, {}, checksums); });
  return filled_bytes(layout.file_size(), [&](std::span<std::byte> out) { write_into(out, layout, tensors); });
}

Dtype sub_byte_dtype(const std::string& dtype) {
  const auto d = parse_dtype(dtype);
  if (!d) throw ArgumentError(ErrorCode::InvalidArgument, "unknown dtype " + quote_name(dtype));
  return *d;
}

nb::bytes pack_sub_byte_py(const std::string& dtype, nb::bytes codes) {
  const std::vector<std::byte> packed = as_argument_error([&] {
    return pack_sub_byte(sub_byte_dtype(dtype), {reinterpret_cast<const std::uint8_t*>(codes.c_str()), codes.size()});
  });
  return nb::bytes(reinterpret_cast<const char*>(packed.data()), packed.size());
}

nb::bytes unpack_sub_byte_py(const std::string& dtype, nb::bytes packed, std::uint64_t elements) {
  const std::vector<std::uint8_t> codes = as_argument_error([&] {
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(packed.c_str()), packed.size());
    return unpack_sub_byte(sub_byte_dtype(dtype), bytes, elements);
  });
  return nb::bytes(reinterpret_cast<const char*>(codes.data()), codes.size());
}

}  // namespace

StructuredLayout plan_save(nb::handle data, nb::handle metadata, std::uint32_t max_depth, std::uint64_t max_header_size,
                           nb::handle context, bool checksums, SaveResult& walked) {
  const Metadata meta = make_metadata(metadata).value_or(Metadata{});
  walked = walk_data(data, max_depth, context);
  return as_argument_error([&] { return std::move(walked.tree).plan(meta, max_header_size, checksums); });
}

namespace {

void py_save_file(nb::handle data, const std::filesystem::path& path, nb::handle metadata, std::uint32_t max_depth, bool fsync,
                  std::uint64_t max_header_size, nb::handle context, bool checksums, nb::handle progress) {
  SaveResult walked;
  const StructuredLayout plan = plan_save(data, metadata, max_depth, max_header_size, context, checksums, walked);
  const auto report = progress_reporter(progress, plan.layout.data_size);
  nb::gil_scoped_release release;
  as_argument_error([&] { write_structured(path, plan, WriteOptions{fsync, false, report}); });
}

// Saves to `write` (a callable taking bytes, of at most stream_chunk_size), called in order with the GIL held.
void py_save_stream(nb::handle data, nb::handle write, nb::handle metadata, std::uint32_t max_depth, std::uint64_t max_header_size,
                    nb::handle context, bool checksums) {
  SaveResult walked;
  const StructuredLayout plan = plan_save(data, metadata, max_depth, max_header_size, context, checksums, walked);
  const ChunkWriter out = [&](const std::byte* bytes, std::size_t size) {
    nb::gil_scoped_acquire acquire;
    write(nb::bytes(reinterpret_cast<const char*>(bytes), size));
  };
  nb::gil_scoped_release release;
  as_argument_error([&] { write_stream(plan.layout, plan.tensors, out); });
}

nb::bytes py_save_bytes(nb::handle data, nb::handle metadata, std::uint32_t max_depth, std::uint64_t max_header_size,
                        nb::handle context, bool checksums) {
  SaveResult walked;
  const StructuredLayout plan = plan_save(data, metadata, max_depth, max_header_size, context, checksums, walked);
  return filled_bytes(plan.layout.file_size(), [&](std::span<std::byte> out) { write_structured_into(out, plan); });
}

}  // namespace

// Tensors go into shards in walk order, a new shard starting where the next tensor would take the current one over
// `max_shard_size` (a larger tensor gets a shard of its own). The shards' names in the Hugging Face convention are the
// caller's (_sharded.shard_name).
nb::tuple write_sharded(const std::vector<WriteTensor>& tensors, const std::string& document, const std::filesystem::path& directory,
                        const std::string& prefix, const std::string& save_id, std::uint64_t max_shard_size, bool fsync, bool checksums,
                        nb::handle progress) {
  const std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();
  const Layout whole = as_argument_error([&] { return plan_layout(tensors, nullptr, unlimited); });
  std::vector<std::vector<WriteTensor>> shards(1);
  nb::list weight_map;
  std::uint64_t total = 0, shard_size = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t size = whole.sizes[i];
    if (!shards.back().empty() && shard_size + size > max_shard_size) {
      shards.emplace_back();
      shard_size = 0;
    }
    shards.back().push_back(tensors[i]);
    shard_size += size;
    total += size;
    weight_map.append(nb::make_tuple(py_str(tensors[i].name), shards.size() - 1));
  }
  // The save's id in every shard, checked against the index's on load; temporary names carry it too, so two saves
  // into one directory at once never write the same file.
  const Metadata format{{std::string(save_id_key), save_id}, {"format", "pt"}};
  // What the index records of each shard: the digest of its checksums entry, which covers the whole file.
  std::vector<std::optional<std::uint64_t>> digests;
  std::vector<std::filesystem::path> written;
  const auto report = progress_reporter(progress, total);
  try {
    nb::gil_scoped_release release;
    for (std::size_t k = 0; k < shards.size(); ++k) {
      written.push_back(directory / ("." + prefix + "-" + std::to_string(k + 1) + "." + save_id + ".partial"));
      write_file(written.back(), shards[k], &format, WriteOptions{fsync, checksums, report});
      digests.push_back(checksums ? checksums_entry_digest(Reader::open(written.back(), default_max_header_size, Access::Parts).header())
                                  : std::nullopt);
    }
  } catch (...) {
    std::error_code ignored;
    for (const auto& path : written) std::filesystem::remove(path, ignored);
    throw;
  }
  nb::list files, entry_digests;
  for (const auto& path : written) files.append(path.string());
  for (const auto& digest : digests) entry_digests.append(digest ? nb::object(nb::int_(*digest)) : nb::none());
  return nb::make_tuple(py_str(document), files, weight_map, total, entry_digests);
}

namespace {

nb::tuple py_save_sharded(nb::handle data, const std::filesystem::path& directory, const std::string& prefix, const std::string& save_id,
                          std::uint32_t max_depth,
                          std::uint64_t max_shard_size, bool fsync, nb::handle context, bool checksums, nb::handle progress) {
  const SaveResult walked = walk_data(data, max_depth, context);
  return write_sharded(walked.tree.tensors, walked.tree.document(), directory, prefix, save_id, max_shard_size, fsync, checksums,
                       progress);
}

// (structured, data or tensor table, user metadata): data when the file has a schema, else the flat tensor table.
// A None `context` is the defaults' (with the budget of a file of `file_size` bytes), made only if the load needs it.
nb::tuple load_from(const TensorSource& file, std::uint32_t max_depth, std::uint64_t max_nodes, nb::handle context, std::uint64_t file_size,
                    bool verify) {
  nb::object data = build_data(file, LoadOptions{max_depth, max_nodes, LoadContext(context, file_size), verify});
  const Header& header = file.shards.front().reader.header();
  if (!data.is_valid()) {
    if (verify) {
      // A plain file loads every tensor: each is checked.
      file.verify_headers();
      for (const TensorInfo& t : header.tensors) file.verify({&t, &file.shards.front()});
    }
    return nb::make_tuple(false, tensor_table(header), metadata_to_python(header, false));
  }
  return nb::make_tuple(true, data, metadata_to_python(header, true));
}

nb::tuple py_load_file(const std::filesystem::path& path, std::uint32_t max_depth, std::uint64_t max_nodes, std::uint64_t max_header_size,
                       nb::handle context, bool verify) {
  TensorSource file;
  file.shards.push_back(open_mapped(path, max_header_size));
  const std::uint64_t size = nb::inst_ptr<FileBuffer>(file.shards[0].buffer)->size;
  nb::tuple loaded = naming_file(path.string(), [&] { return load_from(file, max_depth, max_nodes, context, size, verify); });
  return nb::make_tuple(file.shards[0].buffer, loaded);
}

nb::tuple py_load_bytes(nb::handle data, std::uint32_t max_depth, std::uint64_t max_nodes, std::uint64_t max_header_size,
                        nb::handle context, bool verify) {
  return with_buffer(data, max_header_size, [&](Reader reader, std::uint64_t size) {
    TensorSource file;
    file.shards.push_back(Shard{std::move(reader), nb::borrow(data)});
    return load_from(file, max_depth, max_nodes, context, size, verify);
  });
}

// (has checksums, [what does not match], the digest of its checksums entry or None) of the file `reader` reads;
// `progress(done, total)` is told of the tensor bytes checked.
nb::tuple verify_report(const Reader& reader, const std::string& name, nb::handle progress) {
  std::uint64_t total = 0;
  for (const TensorInfo& t : reader.header().tensors) total += t.nbytes();
  const auto told = progress_reporter(progress, total);
  const VerifyReport report = naming_file(name, [&] {
    nb::gil_scoped_release release;
    return verify_file(reader, told);
  });
  nb::list mismatches;
  for (const std::string& m : report.mismatches) mismatches.append(python_text(m));
  const std::optional<std::uint64_t> digest = checksums_entry_digest(reader.header());
  return nb::make_tuple(report.has_checksums, mismatches, digest ? nb::object(nb::int_(*digest)) : nb::none());
}

nb::tuple py_verify_file(const std::filesystem::path& path, std::uint64_t max_header_size, nb::handle progress) {
  return verify_report(open_mapped(path, max_header_size).reader, path.string(), progress);
}

nb::tuple py_verify_bytes(nb::handle data, const std::string& name, std::uint64_t max_header_size) {
  return naming_file(name, [&] {
    return with_buffer(data, max_header_size, [&](const Reader& reader, std::uint64_t) { return verify_report(reader, name, nb::none()); });
  });
}

std::string py_index_checksums(nb::handle metadata, nb::handle weight_map, const std::vector<std::pair<std::string, std::uint64_t>>& shards) {
  return index_checksums_entry(*make_metadata(metadata), *make_metadata(weight_map), shards);
}

nb::object py_verify_index(nb::handle metadata, nb::handle weight_map) {
  const auto shards = verify_index(*make_metadata(metadata), *make_metadata(weight_map));
  if (!shards) return nb::none();
  nb::dict out;
  for (const auto& [file, digest] : *shards) out[py_str(file)] = nb::int_(digest);
  return out;
}

// The format's vocabulary for the Python layer, which spells none of it again: the reserved names, and each kind's
// name and tag by its C++ enumerator ("NamedTuple": ("namedtuple", "namedtuple")).
nb::dict format_table() {
  nb::dict kinds;
  for (const KindTraits& k : kind_table) kinds[py_str(k.id)] = nb::make_tuple(py_str(k.name), py_str(k.tag));
  nb::dict out;
  out["schema_key"] = py_str(schema_metadata_key);
  out["spill_tensor"] = py_str(schema_spill_tensor);
  out["save_id_key"] = py_str(save_id_key);
  out["checksums_key"] = py_str(checksums_metadata_key);
  out["v1_schema_key"] = py_str(v1_schema_key);
  out["v1_version_key"] = py_str(v1_version_key);
  out["tag_member"] = py_str(tag_member);
  out["id_member"] = py_str(id_member);
  out["recording_key"] = py_str(recording_metadata_key);
  out["recording_version"] = py_str(recording_layout_version);
  out["recording_padding"] = py_str(recording_padding_tensor);
  out["kinds"] = kinds;
  nb::dict fields;
#define SAFESTRUCTURES_FIELD(id, text) fields[#id] = py_str(field::id);
  SAFESTRUCTURES_FIELDS(SAFESTRUCTURES_FIELD)
#undef SAFESTRUCTURES_FIELD
  out["fields"] = fields;
  return out;
}

}  // namespace
}  // namespace safestructures::bindings

NB_MODULE(_core, m) {
  using namespace safestructures;
  using namespace safestructures::bindings;
  m.doc() = "The C++ core of safestructures: the safetensors container, memory-mapped reading and atomic writing.";
  register_error_translator();
  // Arrays viewing a file may still be alive when the interpreter exits; that is not a leak worth printing.
  nb::set_leak_warnings(false);

  nb::class_<FileBuffer>(m, "FileBuffer", nb::type_slots(file_buffer_slots),
                         "The bytes of an opened file (a private copy-on-write mapping), exposed through the buffer protocol.")
      .def_prop_ro("size", [](const FileBuffer& b) { return b.size; }, "Size of the file in bytes.");

  m.attr("DEFAULT_MAX_HEADER_SIZE") = default_max_header_size;
  m.attr("DEFAULT_MAX_DEPTH") = default_max_depth;
  m.attr("DEFAULT_MAX_NODES") = default_max_nodes;
  // {safetensors dtype: (bits per element, numpy dtype name)}, in the reference order.
  nb::dict dtypes;
  for (const auto& t : dtype_traits) dtypes[py_str(t.name)] = nb::make_tuple(t.bits, py_str(t.numpy_name));
  m.attr("DTYPES") = dtypes;

  m.attr("FORMAT") = format_table();
  nb::list ml_names;
  for (const std::string_view name : ml_dtypes_byte_names) ml_names.append(py_str(name));
  m.attr("ML_DTYPES_BYTE_NAMES") = nb::tuple(ml_names);
  m.def(
      "byte_dtype_item_size",
      [](const std::string& name) -> nb::object {
        const auto size = byte_dtype_item_size(name);
        return size ? nb::object(nb::int_(*size)) : nb::object(nb::none());
      },
      "name"_a,
      "The bytes of one element of a dtype a tensor node may name for an array stored as U8 bytes (an ml_dtypes name, "
      "torch.complex32, a numpy type string, a safetensors dtype's numpy name), or None for any other name.");

  m.def("read_file", &py_read_file, "path"_a, "max_header_size"_a = default_max_header_size,
        "Map a safetensors file and validate its header.\n\n"
        "Returns (buffer, metadata, tensors): a FileBuffer over the whole file, the metadata dict (None when the file "
        "has none), and a list of (name, dtype, shape, offset, nbytes) in header order, offsets counted from the start "
        "of the file.");
  m.def("read_bytes", &py_read_bytes, "data"_a, "max_header_size"_a = default_max_header_size,
        "Validate the header of the safetensors file in a buffer: (metadata, tensors), as read_file gives them.");
  m.def(
      "declared_data",
      [](nb::bytes header) {
        const DeclaredData declared = declared_data(std::string_view(header.c_str(), header.size()));
        return nb::make_tuple(declared.size, declared.trailing_allowed);
      },
      "header"_a,
      "(data size, whether bytes may follow it) that a header's text (the N bytes after the length prefix) declares, "
      "the header checked as a load checks it but against the file's size: how far a stream that cannot seek is read.");
  m.def("write_file", &py_write_file, "path"_a, "tensors"_a, "metadata"_a.none() = nb::none(), "fsync"_a = false, "checksums"_a = true,
        "progress"_a.none() = nb::none(),
        "Write a safetensors file atomically from [(name, dtype, shape, ndarray), ...].\n\n"
        "Tensor bytes stream from the arrays' own memory (strided arrays are gathered in bounded chunks); the file is "
        "written beside `path` and renamed over it, so `path` is never left half-written.");
  m.def("write_bytes", &py_write_bytes, "tensors"_a, "metadata"_a.none() = nb::none(), "checksums"_a = true,
        "Serialize [(name, dtype, shape, ndarray), ...] to the bytes of a safetensors file.");
  m.def("pack_sub_byte", &pack_sub_byte_py, "dtype"_a, "codes"_a,
        "Pack one-code-per-byte elements of a sub-byte dtype (F4, F6_E2M3, F6_E3M2) into its little-endian bit stream.");
  m.def("unpack_sub_byte", &unpack_sub_byte_py, "dtype"_a, "packed"_a, "elements"_a,
        "Unpack a sub-byte dtype's bit stream into one code per byte.");
  m.def(
      "quote_name",
      [](nb::str name) {
        // A lone surrogate (a key Python made from a file's "\ud800") has no UTF-8: its three bytes, escaped.
        nb::object bytes = nb::steal(PyUnicode_AsEncodedString(name.ptr(), "utf-8", "surrogatepass"));
        if (!bytes.is_valid()) throw nb::python_error();
        return quote_name(std::string_view(PyBytes_AS_STRING(bytes.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.ptr()))));
      },
      "name"_a,
      "A tensor name or key quoted for an error message, as the core quotes it: JSON-escaped, controls and invisible "
      "or reordering characters as \\uXXXX, cut past 200 bytes.");
  m.def(
      "path_cut",
      [](std::size_t count) {
        const PathCut cut = path_cut(count);
        return std::make_pair(cut.first, cut.last);
      },
      "count"_a,
      "(first, last): the parts [first, last) of a path of `count` parts that a shown path counts instead of "
      "writing (first == last: none), as the core's messages cut deep paths.");
  m.def(
      "view_reach_problem",
      [](std::uint64_t offset, const std::vector<std::uint64_t>& shape, const std::vector<std::int64_t>& stride, std::uint64_t size) {
        return TreeReader::view_reach_problem(offset, shape, stride, size);
      },
      "first"_a, "extents"_a, "steps"_a, "storage_elements"_a,
      "Why a view of `extents` and `steps` (in elements) from element `first` does not lie within a storage of "
      "`storage_elements` elements, or \"\" when it does: the core's one rule of views.");
  m.def("set_hooks", &set_hooks, "hooks"_a, "Install the Python callables the tree walkers use (done by safestructures at import).");
  m.def("save_file", &py_save_file, "data"_a.none(), "path"_a, "metadata"_a.none() = nb::none(), "max_depth"_a = default_max_depth, "fsync"_a = false,
        "max_header_size"_a = default_max_header_size, "context"_a.none() = nb::none(), "checksums"_a = true,
        "progress"_a.none() = nb::none(),
        "Save nested data with tensors as a structured safetensors file, atomically. `context` is handed to the "
        "array_entry hook for every tensor; `progress(done, total)` is told of the tensor bytes written.");
  m.def("save_bytes", &py_save_bytes, "data"_a.none(), "metadata"_a.none() = nb::none(), "max_depth"_a = default_max_depth,
        "max_header_size"_a = default_max_header_size, "context"_a.none() = nb::none(), "checksums"_a = true,
        "Save nested data with tensors as the bytes of a structured safetensors file.");
  m.def("save_stream", &py_save_stream, "data"_a.none(), "write"_a, "metadata"_a.none() = nb::none(), "max_depth"_a = default_max_depth,
        "max_header_size"_a = default_max_header_size, "context"_a.none() = nb::none(), "checksums"_a = true,
        "Save nested data with tensors to `write`, called with the file's bytes in order in pieces of at most 1 MiB "
        "(a stream: nothing is written twice; tensors are hashed in a first pass when checksums are on).");
  m.def("save_sharded", &py_save_sharded, "data"_a.none(), "directory"_a, "prefix"_a, "save_id"_a, "max_depth"_a, "max_shard_size"_a, "fsync"_a,
        "context"_a.none(), "checksums"_a = true, "progress"_a.none() = nb::none(),
        "Write the tensors of `data` as shards under temporary names in `directory`: (schema document, [temporary "
        "path of each shard], [(tensor, shard number)], total tensor bytes, [digest of each shard's checksums entry, "
        "or None]). The caller writes the index and renames.");
  m.def("load_file", &py_load_file, "path"_a, "max_depth"_a = default_max_depth, "max_nodes"_a = default_max_nodes,
        "max_header_size"_a = default_max_header_size, "context"_a.none() = nb::none(), "verify"_a = false,
        "Load a file: (buffer, (True, data, user metadata)) for a structured file, (buffer, (False, tensor table, "
        "metadata)) for a plain safetensors file.");
  m.def("load_bytes", &py_load_bytes, "data"_a, "max_depth"_a = default_max_depth, "max_nodes"_a = default_max_nodes,
        "max_header_size"_a = default_max_header_size, "context"_a.none() = nb::none(), "verify"_a = false,
        "Load from a buffer: (True, data, user metadata) or (False, tensor table, metadata); arrays view `data`.");
  m.def("verify_file", &py_verify_file, "path"_a, "max_header_size"_a = default_max_header_size, "progress"_a.none() = nb::none(),
        "Check a file's checksums: (has checksums, [message naming each tensor, or the structure, that does not match], "
        "digest of its checksums entry or None). `progress(done, total)` is told of the tensor bytes checked.");
  m.def("verify_bytes", &py_verify_bytes, "data"_a, "name"_a, "max_header_size"_a = default_max_header_size,
        "verify_file for the safetensors file in a buffer (a remote file read whole); `name` names it in messages.");
  m.def("index_checksums", &py_index_checksums, "metadata"_a, "weight_map"_a, "shards"_a,
        "The checksums entry of a sharded save's index, from its metadata and weight map ({str: str}) and [(shard file, "
        "digest of its checksums entry)].");
  m.def("verify_index", &py_verify_index, "metadata"_a, "weight_map"_a,
        "Check an index's metadata and weight map against its checksums entry; {shard file: digest} it records, or None "
        "when it has none.");
  register_lazy_file(m);
  register_load_where(m);
  register_save_snapshot(m);
  register_recording(m);
}
